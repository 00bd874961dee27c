//! The request log: NDJSON files under the log dir (`requests-*.ndjson`), one JSON object per
//! line, readable by polars (`pl.scan_ndjson("logs/requests-*.ndjson")`).
//!
//! Requests hand records to a bounded channel and never wait: a writer thread batches them to
//! disk, and a full buffer drops the record and counts it in `switchyard_log_dropped_total`.
//! [`LogStore::shutdown`] writes everything queued before it returns.

use crate::config::LoggingConfig;
use crate::metrics::Metrics;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

enum Msg {
    /// One serialised JSON record, without the newline.
    Record(Vec<u8>),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// Handle to the log writer.
pub struct LogStore {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    metrics: Arc<Metrics>,
    /// Whether prompts and answers may be logged.
    pub log_text: bool,
}

impl LogStore {
    /// Starts the writer thread; fails if the log dir cannot be created.
    pub fn start(cfg: &LoggingConfig, metrics: Arc<Metrics>) -> std::io::Result<LogStore> {
        if !cfg.enabled {
            return Ok(LogStore {
                tx: None,
                thread: Mutex::new(None),
                metrics,
                log_text: cfg.log_text,
            });
        }
        std::fs::create_dir_all(&cfg.dir)?;
        let (tx, rx) = mpsc::channel(cfg.buffer);
        let mut writer = RotatingWriter::new(cfg.dir.clone(), "requests", cfg.rotate_bytes);
        writer.open()?;
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("switchyard-log".into())
            .spawn(move || writer_loop(rx, writer, m))?;
        Ok(LogStore {
            tx: Some(tx),
            thread: Mutex::new(Some(thread)),
            metrics,
            log_text: cfg.log_text,
        })
    }

    /// Queues a record without waiting; drops it (and counts the drop) if the buffer is full.
    pub fn log(&self, record: &impl serde::Serialize) {
        if let Some(tx) = &self.tx {
            let Ok(line) = serde_json::to_vec(record) else {
                return;
            };
            if tx.try_send(Msg::Record(line)).is_err() {
                self.metrics.log_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits until everything queued so far is on disk.
    pub async fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = oneshot::channel();
            if tx.send(Msg::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Writes everything queued and stops the writer.
    pub async fn shutdown(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = oneshot::channel();
            if tx.send(Msg::Close(done)).await.is_ok() {
                let _ = wait.await;
            }
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

fn writer_loop(mut rx: mpsc::Receiver<Msg>, mut w: RotatingWriter, metrics: Arc<Metrics>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut waiters = Vec::new();
        let mut close = false;
        for msg in batch {
            match msg {
                Msg::Record(line) => match w.write_line(&line) {
                    Ok(()) => {
                        metrics.log_written.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tracing::error!(error = %e, "writing the request log failed"),
                },
                Msg::Flush(done) => waiters.push(done),
                Msg::Close(done) => {
                    waiters.push(done);
                    close = true;
                }
            }
        }
        if let Err(e) = w.flush() {
            tracing::error!(error = %e, "flushing the request log failed");
        }
        for done in waiters {
            let _ = done.send(());
        }
        if close {
            break;
        }
    }
}

/// An append-only NDJSON file that moves to a new file past a size limit.
pub struct RotatingWriter {
    dir: PathBuf,
    prefix: &'static str,
    limit: u64,
    file: Option<BufWriter<File>>,
    written: u64,
    seq: u32,
}

impl RotatingWriter {
    pub fn new(dir: PathBuf, prefix: &'static str, limit: u64) -> Self {
        RotatingWriter {
            dir,
            prefix,
            limit,
            file: None,
            written: 0,
            seq: 0,
        }
    }

    fn open(&mut self) -> std::io::Result<()> {
        let stamp = crate::util::rfc3339_millis(crate::util::unix_millis())
            .replace([':', '-'], "")
            .replace('.', "-");
        let path = self.dir.join(format!(
            "{}-{stamp}-{}-{:03}.ndjson",
            self.prefix,
            std::process::id(),
            self.seq
        ));
        self.seq += 1;
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        self.written = f.metadata()?.len();
        self.file = Some(BufWriter::with_capacity(256 * 1024, f));
        Ok(())
    }

    /// Appends one record and a newline.
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() || self.written >= self.limit {
            self.flush()?;
            self.open()?;
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(line)?;
        f.write_all(b"\n")?;
        self.written += line.len() as u64 + 1;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn batches_rotates_and_loses_nothing_on_shutdown() {
        let dir = std::env::temp_dir().join(format!("sy-log-{}", uuid::Uuid::new_v4().simple()));
        let cfg = LoggingConfig {
            enabled: true,
            dir: dir.clone(),
            log_text: true,
            buffer: 100_000,
            rotate_bytes: 2_000,
        };
        let metrics = Arc::new(Metrics::default());
        let store = LogStore::start(&cfg, metrics.clone()).unwrap();
        for i in 0..500 {
            store.log(&json!({"i": i, "pad": "xxxxxxxxxxxxxxxxxxxx"}));
        }
        store.shutdown().await;
        let records = read_records(&dir, "requests").unwrap();
        assert_eq!(records.len(), 500);
        assert_eq!(records[499]["i"], 499);
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert!(files > 1, "expected rotation, got {files} file(s)");
        assert_eq!(metrics.log_written.load(Ordering::Relaxed), 500);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn full_buffer_drops_and_counts() {
        let dir = std::env::temp_dir().join(format!("sy-log-{}", uuid::Uuid::new_v4().simple()));
        let metrics = Arc::new(Metrics::default());
        let (tx, _rx) = mpsc::channel(1);
        let store = LogStore {
            tx: Some(tx),
            thread: Mutex::new(None),
            metrics: metrics.clone(),
            log_text: true,
        };
        store.log(&json!(1));
        store.log(&json!(2));
        assert_eq!(metrics.log_dropped.load(Ordering::Relaxed), 1);
        std::fs::remove_dir_all(dir).ok();
    }
}
