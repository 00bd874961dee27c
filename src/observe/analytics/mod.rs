//! Analytics over the request log: [`index`] tails the NDJSON files the gateway writes (and
//! the feedback files) into a compact in-memory table with bounded rows; [`query`] computes
//! the panels the dashboard and the `/v1/analytics/...` endpoints serve. Imports `observe`'s
//! record format only through the log lines; imported by `http` and the `report` command.

pub mod index;
pub mod query;

use index::{id_hash, line_at, Index};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The analytics table of one log directory, caught up with the files before each query.
pub struct Analytics {
    dir: Option<PathBuf>,
    index: Mutex<Index>,
}

impl Analytics {
    /// A table over `dir` (none when logging is off) keeping at most `rows` requests.
    pub fn new(dir: Option<&Path>, rows: usize) -> Analytics {
        Analytics {
            dir: dir.map(Path::to_path_buf),
            index: Mutex::new(Index::new(rows)),
        }
    }

    /// Reads what the log gained since the last call, then runs `f` on the table. Blocking
    /// (file reads, a pass over the rows): call it off the async runtime.
    pub fn read<T>(&self, f: impl FnOnce(&Index) -> T) -> std::io::Result<T> {
        let mut ix = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = &self.dir {
            ix.refresh(dir)?;
        }
        Ok(f(&ix))
    }
}

/// One request as logged, with the feedback given on it; `None` when the id is unknown (or
/// older than the rows kept).
pub fn request(ix: &Index, request_id: &str) -> std::io::Result<Option<Value>> {
    let h = id_hash(request_id);
    let Some(i) = ix.row_index(h) else {
        return Ok(None);
    };
    let r = &ix.rows[i];
    let line = match line_at(&ix.files[r.file as usize], r.offset) {
        Ok(line) => line,
        // The file was removed (retention) since the row was read.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(record) = serde_json::from_slice::<Value>(&line) else {
        return Ok(None);
    };
    if record["request_id"].as_str() != Some(request_id) {
        return Ok(None);
    }
    let feedback: Vec<Value> = ix
        .feedback_of(h)
        .into_iter()
        .map(|(source, score)| json!({"source": source, "score": score}))
        .collect();
    Ok(Some(json!({"record": record, "feedback": feedback})))
}
