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
