//! Analytics over the request log: [`index`] tails the NDJSON files the gateway writes (and
//! the feedback files) — or, with `[store] postgres_env`, the shared store's tables, so every
//! replica shows the whole fleet — into a compact in-memory table with bounded rows; [`query`]
//! computes the panels the dashboard and the `/v1/analytics/...` endpoints serve ([`filter`]:
//! which rows a query reads; [`experiments`]: the variant comparison; [`savings`]: the savings
//! ledger). Imports `observe`'s record format only through the log lines and `store::pg`;
//! imported by `http` and the `report` command.

pub mod experiments;
pub mod filter;
pub mod index;
pub mod query;
pub mod savings;

use crate::store::pg::{Pg, PgError};
use index::{id_hash, line_at, Index, IN_STORE};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use switchyard_learn::schema::LogRecord;

/// How far the table has read the shared store.
#[derive(Default)]
struct StoreTail {
    seq: Option<i64>,
    feedback_ms: i64,
}

/// What the shared store gained since the last read: request records and feedback.
pub type StoreLines = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The analytics table of one log directory (or of the shared store), caught up before each
/// query.
pub struct Analytics {
    dir: Option<PathBuf>,
    rows: usize,
    index: Mutex<Index>,
    tail: tokio::sync::Mutex<StoreTail>,
}

/// Records another replica may still commit with a lower `seq` than one already read are
/// caught by re-reading this many before the last (duplicates are skipped).
const STORE_OVERLAP: i64 = 1000;

impl Analytics {
    /// A table over `dir` (none when logging is off, or when it reads the shared store)
    /// keeping at most `rows` requests.
    pub fn new(dir: Option<&Path>, rows: usize) -> Analytics {
        Analytics {
            dir: dir.map(Path::to_path_buf),
            rows,
            index: Mutex::new(Index::new(rows)),
            tail: tokio::sync::Mutex::default(),
        }
    }

    /// Fetches what the shared store gained since the last call (the newest `rows` records
    /// the first time).
    pub async fn fetch_store(&self, pg: &Pg) -> Result<StoreLines, PgError> {
        let mut tail = self.tail.lock().await;
        let after = tail.seq.map(|s| (s - STORE_OVERLAP).max(0));
        let limit = if after.is_none() {
            self.rows as i64
        } else {
            100_000
        };
        let (records, last) = pg.tail_requests(after, limit).await?;
        tail.seq = tail.seq.max(last);
        let now = crate::clock::unix_millis() as i64;
        let feedback = pg.feedback_since(tail.feedback_ms - 5_000).await?;
        tail.feedback_ms = now;
        Ok((lines(&records), lines(&feedback)))
    }

    /// Adds what [`Analytics::fetch_store`] returned, then runs `f` on the table.
    pub fn read_with<T>(&self, (records, feedback): StoreLines, f: impl FnOnce(&Index) -> T) -> T {
        let mut ix = self.index.lock().unwrap_or_else(|e| e.into_inner());
        for r in &records {
            ix.add_request(IN_STORE, 0, r);
        }
        for fb in &feedback {
            ix.add_feedback(fb);
        }
        f(&ix)
    }

    /// Bytes the table holds now, and the most its `rows` take (`/metrics`).
    pub fn memory(&self) -> (usize, usize) {
        let ix = self.index.lock().unwrap_or_else(|e| e.into_inner());
        (ix.bytes(), index::Index::bound_bytes(self.rows))
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

/// The feedback given on a request, as the table holds it.
pub fn feedback_json(ix: &Index, request_id: &str) -> Vec<Value> {
    ix.feedback_of(id_hash(request_id))
        .into_iter()
        .map(|(source, score)| json!({"source": source, "score": score}))
        .collect()
}

/// One request as logged, with the feedback given on it; `None` when the id is unknown (or
/// older than the rows kept).
pub fn request(
    ix: &Index,
    request_id: &str,
) -> std::io::Result<Option<(LogRecord<'static>, Vec<Value>)>> {
    let h = id_hash(request_id);
    let Some(i) = ix.row_index(h) else {
        return Ok(None);
    };
    let r = &ix.rows[i];
    let Some(file) = ix.files.get(r.file as usize) else {
        return Ok(None);
    };
    let line = match line_at(file, r.offset) {
        Ok(line) => line,
        // The file was removed (retention) since the row was read.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(record) = serde_json::from_slice::<LogRecord>(&line) else {
        return Ok(None);
    };
    if record.request_id != request_id {
        return Ok(None);
    }
    Ok(Some((record, feedback_json(ix, request_id))))
}

/// Records as the log lines the table reads.
fn lines<T: serde::Serialize>(records: &[T]) -> Vec<Vec<u8>> {
    records
        .iter()
        .filter_map(|r| serde_json::to_vec(r).ok())
        .collect()
}
