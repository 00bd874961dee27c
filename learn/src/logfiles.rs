//! The log directory as both the gateway (feedback index, restarts) and the trainer read it:
//! `<prefix>-<timestamp>.ndjson` files (`requests-…`, `feedback-…`), oldest first, one JSON
//! record per line: a [`LogRecord`] or a [`FeedbackRecord`].

use crate::schema::{FeedbackRecord, LogRecord};
use serde::de::DeserializeOwned;
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

/// Every request record of `dir`'s request logs, oldest first.
pub fn read_requests(dir: &Path) -> std::io::Result<Vec<LogRecord<'static>>> {
    read_records(dir, "requests")
}

/// Every feedback record of `dir`'s feedback logs, oldest first.
pub fn read_feedback(dir: &Path) -> std::io::Result<Vec<FeedbackRecord<'static>>> {
    read_records(dir, "feedback")
}

/// Reads every record of every `<prefix>-*.ndjson` file in `dir`, oldest file first; a line
/// that is not a `T` is skipped.
pub fn read_records<T: DeserializeOwned>(dir: &Path, prefix: &str) -> std::io::Result<Vec<T>> {
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
    for f in read_feedback(dir)? {
        out.entry(f.request_id.into_owned()).or_default().insert(
            (
                f.source.into_owned(),
                f.model.unwrap_or_default().into_owned(),
            ),
            f.score,
        );
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
