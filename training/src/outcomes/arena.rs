//! arena-bench-v1 (lmarena/arena-hard-auto, Apache-2.0): GPT-4 single-answer scores (1–10,
//! graded against a GPT-4 reference answer) of 14 models on 300 Chatbot Arena prompts, vendored
//! into `data/arena-bench/` by `scripts/vendor_arena_bench.py`. Quality = score / 10.

use super::*;

/// Where the vendored files live under the public data directory.
pub const DIR: &str = "arena-bench";

/// Reads `question.jsonl` and `judgements.jsonl` under `dir` into [`Row`]s.
pub fn read_arena(dir: &Path) -> Result<Vec<Row>, String> {
    let qfile = dir.join("question.jsonl");
    let jfile = dir.join("judgements.jsonl");
    let mut questions = HashMap::new();
    for (i, line) in read_lines(&qfile)?.iter().enumerate() {
        let v: Value =
            serde_json::from_str(line).map_err(|e| err(&qfile, format!("line {}: {e}", i + 1)))?;
        let (Some(id), Some(turn)) = (v["question_id"].as_str(), v["turns"][0].as_str()) else {
            return Err(err(
                &qfile,
                format!("line {}: expected question_id and turns", i + 1),
            ));
        };
        questions.insert(id.to_string(), turn.to_string());
    }
    let mut rows = Vec::new();
    for (i, line) in read_lines(&jfile)?.iter().enumerate() {
        let v: Value =
            serde_json::from_str(line).map_err(|e| err(&jfile, format!("line {}: {e}", i + 1)))?;
        let (Some(id), Some(model), Some(score)) = (
            v["question_id"].as_str(),
            v["model"].as_str(),
            v["score"].as_f64(),
        ) else {
            return Err(err(
                &jfile,
                format!("line {}: expected question_id, model and score", i + 1),
            ));
        };
        let Some(prompt) = questions.get(id) else {
            return Err(err(
                &jfile,
                format!("line {}: question {id} is not in question.jsonl", i + 1),
            ));
        };
        rows.push(Row {
            propensity: 1.0,
            metadata: String::new(),
            prompt: prompt.clone(),
            source: "arena_bench".into(),
            category: "arena_bench".into(),
            model: model.to_string(),
            source_model: model.to_string(),
            quality: (score / 10.0).clamp(0.0, 1.0),
            input_tokens: input_tokens(prompt),
            output_tokens: 0,
            origin: "arena-bench/judgements.jsonl".into(),
        });
    }
    Ok(rows)
}

fn read_lines(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, e))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}
