//! The log directory as both the gateway (feedback index, restarts) and the trainer read it:
//! `<prefix>-<timestamp>.ndjson` files (`requests-…`, `feedback-…`), oldest first, one JSON
//! record per line. The record's fields are `switchyard::observe::record::LogRecord`'s.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The `<prefix>-*.ndjson` files in `dir`, oldest first (names sort by creation time).
pub fn ndjson_files(dir: &Path, prefix: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{prefix}-")) && n.ends_with(".ndjson"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads every record of every `<prefix>-*.ndjson` file in `dir`, oldest file first.
pub fn read_records(dir: &Path, prefix: &str) -> std::io::Result<Vec<Value>> {
    let files = ndjson_files(dir, prefix)?;
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f)?.lines() {
            if let Ok(v) = serde_json::from_str(line) {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// Feedback per request, as the evaluators read it: request id → (source, model) → score, the
/// last record per key. `mean_for` averages the sources about one model.
pub type FeedbackScores =
    std::collections::BTreeMap<String, std::collections::BTreeMap<(String, String), f64>>;

/// Every feedback record of `dir`, the last per (request, source, model).
pub fn feedback_scores(dir: &Path) -> std::io::Result<FeedbackScores> {
    let mut out = FeedbackScores::new();
    for f in read_records(dir, "feedback")? {
        if let (Some(id), Some(score)) = (f["request_id"].as_str(), f["score"].as_f64()) {
            let source = f["source"].as_str().unwrap_or("user").to_string();
            let model = f["model"].as_str().unwrap_or("").to_string();
            out.entry(id.to_string())
                .or_default()
                .insert((source, model), score);
        }
    }
    Ok(out)
}

/// The mean score of a request's feedback about `model` over its sources (users, the judge);
/// `None` without any.
pub fn mean_for(scores: &FeedbackScores, request_id: &str, model: &str) -> Option<f64> {
    let v: Vec<f64> = scores
        .get(request_id)?
        .iter()
        .filter(|((_, m), _)| m == model)
        .map(|(_, s)| *s)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}
