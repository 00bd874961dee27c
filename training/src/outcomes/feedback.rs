//! Logged production requests joined with their feedback, read into [`Row`]s.

use super::*;
use switchyard_learn::schema::{FeedbackRecord, LogRecord};

/// What the logs hold for training.
#[derive(Default)]
pub struct Feedback {
    /// One outcome row per (request, source) with usable feedback.
    pub rows: Vec<Row>,
    /// What was skipped or taken with care, and how often.
    pub notes: Vec<String>,
    /// Every model a logged request was served by or had as an `auto` candidate.
    pub logged_models: BTreeSet<String>,
}

/// Joins feedback to logged requests by request id: one outcome row per (request, source),
/// the last feedback winning, for whichever served model answered — a model the benchmark
/// data does not know becomes a candidate with its own outcomes. Feedback for a request that
/// is not in the log, and requests logged without text (`log_text = false`), cannot be used
/// and are counted.
pub fn read_feedback(log_dir: &Path) -> Result<Feedback, String> {
    let mut notes = Vec::new();
    if !log_dir.is_dir() {
        return Ok(Feedback::default());
    }
    let feedback = ndjson_frame(log_dir, "feedback")?;
    let requests = ndjson_frame(log_dir, "requests")?;
    let logged_models: BTreeSet<String> = match &requests {
        Some(r) => r
            .column("models")
            .and_then(|c| c.str().cloned())
            .map_err(|e| e.to_string())?
            .iter()
            .flatten()
            .flat_map(|m| m.split('\n'))
            .filter(|m| !m.is_empty())
            .map(String::from)
            .collect(),
        None => BTreeSet::new(),
    };
    let (Some(feedback), Some(requests)) = (feedback, requests) else {
        return Ok(Feedback {
            logged_models,
            ..Feedback::default()
        });
    };
    // Last feedback per (request_id, source), joined to its request.
    let joined = feedback
        .lazy()
        .select([
            col("request_id"),
            col("source"),
            col("score"),
            col("model").alias("feedback_model"),
            col("origin_file"),
            col("origin_row"),
        ])
        .group_by_stable([col("request_id"), col("source")])
        .agg([
            col("score").last(),
            col("feedback_model").last(),
            col("origin_file").last(),
            col("origin_row").last(),
        ])
        .join(
            requests.lazy().select([
                col("request_id"),
                lit(true).alias("in_log"),
                col("prompt_text"),
                col("prompt_tokens"),
                col("completion_tokens"),
                col("metadata"),
                col("propensity"),
            ]),
            [col("request_id")],
            [col("request_id")],
            JoinArgs::new(JoinType::Left),
        )
        .sort(
            ["origin_file", "origin_row"],
            SortMultipleOptions::default(),
        )
        .collect()
        .map_err(|e| {
            format!(
                "joining feedback to the request log in {}: {e}",
                log_dir.display()
            )
        })?;
    let get_str = |name: &str| {
        joined
            .column(name)
            .and_then(|c| c.str().cloned())
            .map_err(|e| e.to_string())
    };
    let get_f64 = |name: &str| {
        joined
            .column(name)
            .and_then(|c| c.cast(&DataType::Float64))
            .and_then(|c| c.f64().cloned())
            .map_err(|e| e.to_string())
    };
    let metadata = get_str("metadata")?;
    let (ids, models_col, prompts, files) = (
        get_str("request_id")?,
        get_str("feedback_model")?,
        get_str("prompt_text")?,
        get_str("origin_file")?,
    );
    let (scores, ptoks, ctoks, rows_col) = (
        get_f64("score")?,
        get_f64("prompt_tokens")?,
        get_f64("completion_tokens")?,
        get_f64("origin_row")?,
    );
    let propensities = get_f64("propensity")?;
    let in_log = joined
        .column("in_log")
        .and_then(|c| c.bool().cloned())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let (mut no_text, mut unknown, mut bad_propensity) = (0, 0, 0);
    for i in 0..joined.height() {
        let (file, row) = (
            files.get(i).unwrap_or(""),
            rows_col.get(i).unwrap_or(0.0) as u64,
        );
        if in_log.get(i) != Some(true) {
            unknown += 1;
            continue;
        }
        let Some(prompt) = prompts.get(i) else {
            no_text += 1;
            continue;
        };
        let model = models_col.get(i).unwrap_or("");
        out.push(Row {
            prompt: prompt.to_string(),
            source: "feedback".into(),
            category: "production".into(),
            model: model.to_string(),
            source_model: model.to_string(),
            quality: scores.get(i).unwrap_or(0.0),
            input_tokens: ptoks.get(i).unwrap_or(0.0) as u64,
            output_tokens: ctoks.get(i).unwrap_or(0.0) as u64,
            origin: format!("{file}:{row} (request {})", ids.get(i).unwrap_or("")),
            metadata: metadata.get(i).unwrap_or("").to_string(),
            propensity: match propensities.get(i) {
                Some(p) if p > 0.0 && p <= 1.0 => p,
                // Not one the gateway logs (a hand-made or damaged log): taken as 1, counted.
                Some(_) => {
                    bad_propensity += 1;
                    1.0
                }
                // Not an `auto` decision, or logged before propensities were.
                None => 1.0,
            },
        });
    }
    if unknown > 0 {
        notes.push(format!("{unknown} feedback row(s) name a request id that is not in the request log of {}; skipped", log_dir.display()));
    }
    if bad_propensity > 0 {
        notes.push(format!("{bad_propensity} feedback row(s) answer requests whose logged propensity (learned.exploration.propensity) is outside (0, 1]; taken as 1 (not inverse-propensity weighted)"));
    }
    if no_text > 0 {
        notes.push(format!("{no_text} feedback row(s) refer to requests logged without text (log_text = false); skipped"));
    }
    Ok(Feedback {
        rows: out,
        notes,
        logged_models,
    })
}

/// All `<prefix>-*.ndjson` records as a polars frame with `origin_file`/`origin_row`, and for
/// request records the user text (`prompt_text`) that the encoder would see.
fn ndjson_frame(dir: &Path, prefix: &str) -> Result<Option<DataFrame>, String> {
    let mut cols: HashMap<&str, Vec<Option<String>>> = HashMap::new();
    let mut nums: HashMap<&str, Vec<Option<f64>>> = HashMap::new();
    let files = switchyard_learn::logfiles::ndjson_files(dir, prefix).map_err(|e| err(dir, e))?;
    let mut n = 0;
    for file in &files {
        for (i, line) in std::fs::read_to_string(file)
            .map_err(|e| err(file, e))?
            .lines()
            .enumerate()
        {
            let parse_err = |e: serde_json::Error| {
                err(file, format!("line {}: not a {prefix} record: {e}", i + 1))
            };
            cols.entry("origin_file")
                .or_default()
                .push(Some(file.display().to_string()));
            nums.entry("origin_row")
                .or_default()
                .push(Some((i + 1) as f64));
            if prefix == "feedback" {
                let f: FeedbackRecord = serde_json::from_str(line).map_err(parse_err)?;
                cols.entry("request_id")
                    .or_default()
                    .push(Some(f.request_id.into_owned()));
                cols.entry("source")
                    .or_default()
                    .push(Some(f.source.into_owned()));
                cols.entry("model")
                    .or_default()
                    .push(f.model.map(|m| m.into_owned()));
                nums.entry("score").or_default().push(Some(f.score));
            } else {
                let r: LogRecord = serde_json::from_str(line).map_err(parse_err)?;
                cols.entry("request_id")
                    .or_default()
                    .push(Some(r.request_id.to_string()));
                let text = r
                    .messages()
                    .as_ref()
                    .and_then(Value::as_array)
                    .map(|m| switchyard_learn::prompt::prompt_text(m));
                cols.entry("prompt_text")
                    .or_default()
                    .push(text.filter(|t| !t.is_empty()));
                cols.entry("metadata").or_default().push(
                    r.metadata
                        .as_ref()
                        .map(|m| Value::Object(m.clone().into_owned()).to_string()),
                );
                let candidates = r.learned.iter().flat_map(|l| &l.candidates);
                let models: Vec<&str> = r
                    .model
                    .as_deref()
                    .into_iter()
                    .chain(candidates.map(|c| c.model.as_str()))
                    .collect();
                cols.entry("models")
                    .or_default()
                    .push(Some(models.join("\n")));
                nums.entry("prompt_tokens")
                    .or_default()
                    .push(Some(r.prompt_tokens as f64));
                nums.entry("completion_tokens")
                    .or_default()
                    .push(Some(r.completion_tokens as f64));
                nums.entry("propensity")
                    .or_default()
                    .push(r.learned.as_ref().map(|l| l.exploration.propensity));
            }
            n += 1;
        }
    }
    if n == 0 {
        return Ok(None);
    }
    let mut columns: Vec<Column> = cols
        .into_iter()
        .map(|(k, v)| Column::new(k.into(), v))
        .collect();
    columns.extend(nums.into_iter().map(|(k, v)| Column::new(k.into(), v)));
    columns.sort_by(|a, b| a.name().cmp(b.name()));
    DataFrame::new_infer_height(columns)
        .map(Some)
        .map_err(|e| e.to_string())
}
