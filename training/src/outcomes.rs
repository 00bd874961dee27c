//! Outcome data in one schema: the RouteLLM benchmark outcomes and logged production requests
//! with user feedback, as one polars table with a fixed, seeded, grouped split.
//!
//! Columns: `prompt_id` (sha256 of the prompt text, 16 hex), `prompt`, `source`, `category`,
//! `model`, `quality` (0–1), `input_tokens`, `output_tokens`, `cost_usd`, `origin`,
//! `contaminated`, `split` (train/val/test by prompt), `split_subject` (whole MMLU subjects and
//! MT-Bench categories held out; GSM8K and feedback by prompt).

use polars::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use switchyard_learn::hash::stable_hash;
use switchyard_learn::price::Price;
use switchyard_learn::prompt::estimate_tokens;

/// The strong and weak model of the RouteLLM data, with the prices used for cost.
pub const STRONG: &str = "gpt-4-1106-preview";
pub const WEAK: &str = "mistralai/Mixtral-8x7B-Instruct-v0.1";

/// (input, output) USD per million tokens. GPT-4 Turbo's list price; Mixtral at the top of the
/// typical hosted range ($0.24–0.60).
pub fn price(model: &str) -> Option<(f64, f64)> {
    match model {
        STRONG => Some((10.0, 30.0)),
        WEAK => Some((0.6, 0.6)),
        _ => None,
    }
}

/// Estimated output tokens of an MMLU answer (a letter, maybe with a word); the files record none.
const MMLU_OUTPUT_TOKENS: u64 = 2;

/// One outcome row before it becomes a table.
#[derive(Debug, Clone)]
pub struct Row {
    pub prompt: String,
    pub source: String,
    pub category: String,
    pub model: String,
    pub quality: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub origin: String,
}

pub fn prompt_id(prompt: &str) -> String {
    let d = Sha256::digest(prompt.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Input tokens as the gateway estimates them for a single user message.
pub fn input_tokens(prompt: &str) -> u64 {
    estimate_tokens(prompt) + 3
}

fn err(file: &Path, msg: impl std::fmt::Display) -> String {
    format!("{}: {msg}", file.display())
}

fn read_csv(path: &Path) -> Result<DataFrame, String> {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0)) // every column as text: True/False parsed below
        .try_into_reader_with_file_path(Some(path.into()))
        .and_then(|r| r.finish())
        .map_err(|e| err(path, format!("cannot read CSV: {e}")))
}

fn text_column<'a>(
    df: &'a DataFrame,
    name: &str,
    file: &Path,
) -> Result<&'a StringChunked, String> {
    df.column(name)
        .map_err(|_| {
            err(
                file,
                format!(
                    "missing column {name:?} (columns: {:?})",
                    df.get_column_names()
                ),
            )
        })?
        .str()
        .map_err(|e| err(file, e))
}

fn values(ca: &StringChunked) -> Vec<Option<&str>> {
    (0..ca.len()).map(|i| ca.get(i)).collect()
}

fn parse_bool(v: Option<&str>, file: &Path, row: usize, col: &str) -> Result<f64, String> {
    match v.map(|s| s.trim().to_ascii_lowercase()) {
        Some(s) if s == "true" => Ok(1.0),
        Some(s) if s == "false" => Ok(0.0),
        other => Err(err(
            file,
            format!(
                "row {}: column {col:?} is {other:?}, expected True or False",
                row + 2
            ),
        )),
    }
}

/// Reads the RouteLLM outcome files under `src` (mmlu/, gsm8k/, mt_bench/).
pub fn read_routellm(src: &Path) -> Result<(Vec<Row>, HashSet<String>), String> {
    let mut rows = Vec::new();
    let mut mmlu_files: Vec<_> = std::fs::read_dir(src.join("mmlu"))
        .map_err(|e| err(&src.join("mmlu"), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    mmlu_files.sort();
    for file in &mmlu_files {
        let df = read_csv(file)?;
        let subject = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .trim_start_matches("mmlu_")
            .to_string();
        let prompts = text_column(&df, "prompt", file)?;
        for model in [WEAK, STRONG] {
            let col = text_column(&df, model, file)?;
            for (i, (p, v)) in values(prompts).into_iter().zip(values(col)).enumerate() {
                let Some(p) = p else { continue };
                rows.push(Row {
                    prompt: p.to_string(),
                    source: "mmlu".into(),
                    category: subject.clone(),
                    model: model.into(),
                    quality: parse_bool(v, file, i, model)?,
                    input_tokens: input_tokens(p),
                    output_tokens: MMLU_OUTPUT_TOKENS,
                    origin: format!(
                        "routellm/mmlu/{}",
                        file.file_name().unwrap().to_string_lossy()
                    ),
                });
            }
        }
    }
    let file = src.join("gsm8k/gsm8k_responses.csv");
    let df = read_csv(&file)?;
    let prompts = text_column(&df, "prompt", &file)?;
    for model in [WEAK, STRONG] {
        let col = text_column(&df, model, &file)?;
        let responses = text_column(&df, &format!("{model}_response"), &file)?;
        for (i, ((p, v), r)) in values(prompts)
            .into_iter()
            .zip(values(col))
            .zip(values(responses))
            .enumerate()
        {
            let Some(p) = p else { continue };
            rows.push(Row {
                prompt: p.to_string(),
                source: "gsm8k".into(),
                category: "grade_school_math".into(),
                model: model.into(),
                quality: parse_bool(v, &file, i, model)?,
                input_tokens: input_tokens(p),
                output_tokens: estimate_tokens(r.unwrap_or("")).max(1),
                origin: "routellm/gsm8k/gsm8k_responses.csv".into(),
            });
        }
    }
    rows.extend(read_mt_bench(&src.join("mt_bench"))?);
    let mut contaminated = HashSet::new();
    for dir in ["mmlu", "gsm8k", "mt_bench"] {
        let file = src.join(dir).join("contaminated_prompts.jsonl");
        for (i, line) in std::fs::read_to_string(&file)
            .map_err(|e| err(&file, e))?
            .lines()
            .enumerate()
        {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| err(&file, format!("line {}: {e}", i + 1)))?;
            if let Some(p) = v["eval_prompt"].as_str() {
                contaminated.insert(prompt_id(p));
            }
        }
    }
    Ok((rows, contaminated))
}

/// MT-Bench turn 1: the question, quality = GPT-4 judge score / 10, output tokens estimated
/// from the judged answer text.
fn read_mt_bench(dir: &Path) -> Result<Vec<Row>, String> {
    let qfile = dir.join("question.jsonl");
    let mut questions = HashMap::new();
    for (i, line) in std::fs::read_to_string(&qfile)
        .map_err(|e| err(&qfile, e))?
        .lines()
        .enumerate()
    {
        let v: Value =
            serde_json::from_str(line).map_err(|e| err(&qfile, format!("line {}: {e}", i + 1)))?;
        let id = v["question_id"]
            .as_i64()
            .ok_or_else(|| err(&qfile, format!("line {}: no question_id", i + 1)))?;
        let turn = v["turns"][0].as_str().unwrap_or("").to_string();
        questions.insert(
            id,
            (
                turn,
                v["category"].as_str().unwrap_or("unknown").to_string(),
            ),
        );
    }
    let jfile = dir.join("judgements.jsonl");
    let mut rows = Vec::new();
    for (i, line) in std::fs::read_to_string(&jfile)
        .map_err(|e| err(&jfile, e))?
        .lines()
        .enumerate()
    {
        let v: Value =
            serde_json::from_str(line).map_err(|e| err(&jfile, format!("line {}: {e}", i + 1)))?;
        if v["turn"].as_i64() != Some(1) {
            continue;
        }
        let id = v["question_id"].as_i64().unwrap_or(-1);
        let Some((prompt, category)) = questions.get(&id) else {
            return Err(err(
                &jfile,
                format!("line {}: question_id {id} is not in question.jsonl", i + 1),
            ));
        };
        let score = v["score"]
            .as_f64()
            .ok_or_else(|| err(&jfile, format!("line {}: no numeric score", i + 1)))?;
        let answer = v["user_prompt"]
            .as_str()
            .and_then(|u| u.split("### Assistant A:").nth(1))
            .and_then(|a| a.split("<|The End of Assistant A").next())
            .unwrap_or("");
        rows.push(Row {
            prompt: prompt.clone(),
            source: "mt_bench".into(),
            category: category.clone(),
            model: v["model"].as_str().unwrap_or("").to_string(),
            quality: (score / 10.0).clamp(0.0, 1.0),
            input_tokens: input_tokens(prompt),
            output_tokens: estimate_tokens(answer.trim()).max(1),
            origin: "routellm/mt_bench/judgements.jsonl".into(),
        });
    }
    Ok(rows)
}

/// Joins feedback to logged requests by request id: one outcome row per (request, source),
/// the last feedback winning. Requests logged without text (`log_text = false`) cannot be used
/// and are counted; feedback for a model outside `models` is reported with its file and row.
pub fn read_feedback(
    log_dir: &Path,
    models: &HashSet<String>,
) -> Result<(Vec<Row>, Vec<String>), String> {
    let mut notes = Vec::new();
    if !log_dir.is_dir() {
        return Ok((vec![], notes));
    }
    let feedback = ndjson_frame(log_dir, "feedback")?;
    let requests = ndjson_frame(log_dir, "requests")?;
    let (Some(feedback), Some(requests)) = (feedback, requests) else {
        return Ok((vec![], notes));
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
                col("prompt_text"),
                col("prompt_tokens"),
                col("completion_tokens"),
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
    let mut out = Vec::new();
    let mut no_text = 0;
    for i in 0..joined.height() {
        let (file, row) = (
            files.get(i).unwrap_or(""),
            rows_col.get(i).unwrap_or(0.0) as u64,
        );
        let model = models_col.get(i).unwrap_or("");
        if !models.contains(model) {
            notes.push(format!(
                "{file} line {row}: feedback for model {model:?}, which has no outcome data to train with; skipped (candidates: {})",
                models.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            continue;
        }
        let Some(prompt) = prompts.get(i) else {
            no_text += 1;
            continue;
        };
        out.push(Row {
            prompt: prompt.to_string(),
            source: "feedback".into(),
            category: "production".into(),
            model: model.to_string(),
            quality: scores.get(i).unwrap_or(0.0),
            input_tokens: ptoks.get(i).unwrap_or(0.0) as u64,
            output_tokens: ctoks.get(i).unwrap_or(0.0) as u64,
            origin: format!("{file}:{row} (request {})", ids.get(i).unwrap_or("")),
        });
    }
    if no_text > 0 {
        notes.push(format!("{no_text} feedback row(s) refer to requests logged without text (log_text = false) or not in the log; skipped"));
    }
    Ok((out, notes))
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
            let v: Value = serde_json::from_str(line)
                .map_err(|e| err(file, format!("line {}: not JSON: {e}", i + 1)))?;
            let s = |k: &str| v[k].as_str().map(String::from);
            cols.entry("request_id").or_default().push(s("request_id"));
            cols.entry("origin_file")
                .or_default()
                .push(Some(file.display().to_string()));
            nums.entry("origin_row")
                .or_default()
                .push(Some((i + 1) as f64));
            if prefix == "feedback" {
                cols.entry("source").or_default().push(s("source"));
                cols.entry("model").or_default().push(s("model"));
                nums.entry("score").or_default().push(v["score"].as_f64());
            } else {
                let text = v["prompt"]
                    .as_array()
                    .map(|m| switchyard_learn::prompt::prompt_text(m));
                cols.entry("prompt_text")
                    .or_default()
                    .push(text.filter(|t| !t.is_empty()));
                nums.entry("prompt_tokens")
                    .or_default()
                    .push(v["prompt_tokens"].as_f64());
                nums.entry("completion_tokens")
                    .or_default()
                    .push(v["completion_tokens"].as_f64());
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

fn bucket(seed: u64, key: &str) -> u64 {
    stable_hash(&format!("{seed}:{key}")) % 100
}

fn split_of(b: u64, train: u64, val: u64) -> &'static str {
    if b < train {
        "train"
    } else if b < train + val {
        "val"
    } else {
        "test"
    }
}

/// Builds the outcome table: dedup by (prompt_id, model), price, and assign both splits.
pub fn table(
    rows: Vec<Row>,
    contaminated: &HashSet<String>,
    seed: u64,
) -> Result<DataFrame, String> {
    let n = rows.len();
    let mut c = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut q, mut it, mut ot, mut cost, mut origin, mut cont, mut split, mut split_subject) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for r in rows.into_iter().filter(|r| !r.prompt.trim().is_empty()) {
        let id = prompt_id(&r.prompt);
        let is_cont = contaminated.contains(&id);
        let (pin, pout) = price(&r.model).unwrap_or((0.0, 0.0));
        let by_prompt = if is_cont {
            "train"
        } else {
            split_of(bucket(seed, &id), 70, 15)
        };
        let by_group = match r.source.as_str() {
            _ if is_cont => "train",
            "mmlu" | "mt_bench" => split_of(
                bucket(seed, &format!("{}/{}", r.source, r.category)),
                70,
                10,
            ),
            _ => by_prompt,
        };
        c.0.push(id);
        c.1.push(r.prompt);
        c.2.push(r.source);
        c.3.push(r.category);
        c.4.push(r.model);
        q.push(r.quality);
        it.push(r.input_tokens);
        ot.push(r.output_tokens);
        let price = Price {
            input_per_mtok: pin,
            output_per_mtok: pout,
        };
        cost.push(price.cost_usd(r.input_tokens as f64, r.output_tokens as f64));
        origin.push(r.origin);
        cont.push(is_cont);
        split.push(by_prompt);
        split_subject.push(by_group);
    }
    let df = DataFrame::new_infer_height(vec![
        Column::new("prompt_id".into(), c.0),
        Column::new("prompt".into(), c.1),
        Column::new("source".into(), c.2),
        Column::new("category".into(), c.3),
        Column::new("model".into(), c.4),
        Column::new("quality".into(), q),
        Column::new("input_tokens".into(), it),
        Column::new("output_tokens".into(), ot),
        Column::new("cost_usd".into(), cost),
        Column::new("origin".into(), origin),
        Column::new("contaminated".into(), cont),
        Column::new("split".into(), split),
        Column::new("split_subject".into(), split_subject),
    ])
    .map_err(|e| e.to_string())?;
    // Clean: drop out-of-range quality (empty prompts were dropped above); one row per (prompt, model).
    df.lazy()
        .filter(
            col("quality")
                .gt_eq(lit(0.0))
                .and(col("quality").lt_eq(lit(1.0))),
        )
        .unique_stable(
            Some(cols(["prompt_id", "model"])),
            UniqueKeepStrategy::First,
        )
        .collect()
        .map_err(|e| format!("cleaning the outcome table: {e}"))
}

/// Writes a frame to Parquet.
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    }
    let f = std::fs::File::create(path).map_err(|e| err(path, e))?;
    ParquetWriter::new(f)
        .finish(df)
        .map(|_| ())
        .map_err(|e| err(path, format!("cannot write Parquet: {e}")))
}

/// Reads the outcome table, checking its columns.
pub fn read_parquet(path: &Path) -> Result<DataFrame, String> {
    let df = LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().as_ref()),
        Default::default(),
    )
    .and_then(|lf| lf.collect())
    .map_err(|e| {
        err(
            path,
            format!("cannot read the outcome table: {e}; create it with `switchyard train import`"),
        )
    })?;
    for name in [
        "prompt_id",
        "prompt",
        "source",
        "category",
        "model",
        "quality",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "split",
        "split_subject",
    ] {
        if df.column(name).is_err() {
            return Err(err(
                path,
                format!("missing column {name:?}; re-create it with `switchyard train import`"),
            ));
        }
    }
    if df.height() == 0 {
        return Err(err(path, "the outcome table is empty"));
    }
    Ok(df)
}
