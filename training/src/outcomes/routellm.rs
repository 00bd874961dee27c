//! The RouteLLM benchmark outcomes (MMLU, GSM8K, MT-Bench judgements) read into [`Row`]s.

use super::*;

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
                    propensity: 1.0,
                    metadata: String::new(),
                    prompt: p.to_string(),
                    source: "mmlu".into(),
                    category: subject.clone(),
                    model: model.into(),
                    source_model: model.into(),
                    quality: parse_bool(v, file, i, model)?,
                    input_tokens: input_tokens(p),
                    output_tokens: MMLU_OUTPUT_TOKENS,
                    origin: format!(
                        "routellm/mmlu/{}",
                        file.file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
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
                propensity: 1.0,
                metadata: String::new(),
                prompt: p.to_string(),
                source: "gsm8k".into(),
                category: "grade_school_math".into(),
                model: model.into(),
                source_model: model.into(),
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
/// from the judged answer text (quoted in the judge's prompt).
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
        // Turn-1 judge prompts quote the answer between these markers.
        let answer = v["user_prompt"]
            .as_str()
            .and_then(|u| u.split("[The Start of Assistant's Answer]").nth(1))
            .and_then(|a| a.split("[The End of Assistant's Answer]").next())
            .ok_or_else(|| {
                err(
                    &jfile,
                    format!(
                        "line {}: no answer between [The Start/End of Assistant's Answer]",
                        i + 1
                    ),
                )
            })?;
        rows.push(Row {
            propensity: 1.0,
            metadata: String::new(),
            prompt: prompt.clone(),
            source: "mt_bench".into(),
            category: category.clone(),
            model: v["model"].as_str().unwrap_or("").to_string(),
            source_model: v["model"].as_str().unwrap_or("").to_string(),
            quality: (score / 10.0).clamp(0.0, 1.0),
            input_tokens: input_tokens(prompt),
            output_tokens: estimate_tokens(answer.trim()).max(1),
            origin: "routellm/mt_bench/judgements.jsonl".into(),
        });
    }
    Ok(rows)
}
