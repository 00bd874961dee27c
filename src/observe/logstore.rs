//! The request log: NDJSON files under the log dir (`requests-*.ndjson`), one JSON object per
//! line, readable by polars (`pl.scan_ndjson("logs/requests-*.ndjson")`).
//!
//! Requests hand records to a bounded channel and never wait: a writer thread batches them to
//! disk, and a full buffer drops the record and counts it in `switchyard_log_dropped_total`.
//! [`LogStore::shutdown`] writes everything queued before it returns.

use crate::config::LoggingConfig;
use crate::observe::metrics::Metrics;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
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
    /// The shared store's batched writer also gets every record (`[store] postgres_env`).
    store: Option<Arc<crate::store::Store>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    metrics: Arc<Metrics>,
}

/// The head of an answer within `max` bytes, cut at a character boundary, with a marker that
/// says how much was left out; `total` is the whole answer's size in bytes (`head` may be
/// only the start of it, as kept while streaming).
pub fn clip(head: &str, total: usize, max: usize) -> std::borrow::Cow<'_, str> {
    if total <= max && head.len() <= max {
        return head.into();
    }
    let mut end = max.min(head.len());
    while !head.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}…[{} more bytes not logged]",
        &head[..end],
        total.max(head.len()) - end
    )
    .into()
}

impl LogStore {
    /// Starts the writer thread; fails if the log dir cannot be created.
    pub fn start(
        cfg: &LoggingConfig,
        metrics: Arc<Metrics>,
        store: Option<Arc<crate::store::Store>>,
    ) -> std::io::Result<LogStore> {
        if !cfg.enabled {
            return Ok(LogStore {
                store,
                tx: None,
                thread: Mutex::new(None),
                metrics,
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
            store,
            tx: Some(tx),
            thread: Mutex::new(Some(thread)),
            metrics,
        })
    }

    /// Queues a record without waiting; drops it (and counts the drop) if the buffer is full.
    pub fn log(&self, record: &impl serde::Serialize) {
        let writer = self.store.as_ref().and_then(|s| s.writer.as_ref());
        if self.tx.is_none() && writer.is_none() {
            return;
        }
        let Ok(line) = serde_json::to_vec(record) else {
            return;
        };
        if let Some(w) = writer {
            w.offer(line.clone());
        }
        if let Some(tx) = &self.tx {
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

/// How long the writer lets records gather after a write before it looks again. Requests
/// queue records without waking it while it waits (a wake is a syscall on the request's
/// thread), and each write takes all of them at once; records reach the disk at most this much
/// later, and [`LogStore::flush`] still returns once they are there.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

fn writer_loop(mut rx: mpsc::Receiver<Msg>, mut w: RotatingWriter, metrics: Arc<Metrics>) {
    let mut complaints = Throttled::new(std::time::Duration::from_secs(10));
    let mut buf = Vec::with_capacity(256 * 1024);
    while let Some(first) = rx.blocking_recv() {
        if matches!(first, Msg::Record(_)) {
            std::thread::sleep(LINGER);
        }
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut waiters = Vec::new();
        let mut close = false;
        let mut records = 0u64;
        buf.clear();
        for msg in batch {
            match msg {
                Msg::Record(line) => {
                    buf.extend_from_slice(&line);
                    buf.push(b'\n');
                    records += 1;
                }
                Msg::Flush(done) => waiters.push(done),
                Msg::Close(done) => {
                    waiters.push(done);
                    close = true;
                }
            }
        }
        if records > 0 {
            match w.write_batch(&buf) {
                Ok(()) => {
                    metrics.log_written.fetch_add(records, Ordering::Relaxed);
                }
                Err((e, reached)) => {
                    // What did not reach the file is lost (a partial line is cut off): count it.
                    metrics.log_written.fetch_add(reached, Ordering::Relaxed);
                    metrics
                        .log_dropped
                        .fetch_add(records - reached, Ordering::Relaxed);
                    if let Some(suppressed) = complaints.ready() {
                        tracing::error!(error = %e, records, suppressed, "writing the request log failed; records dropped");
                    }
                }
            }
        }
        for done in waiters {
            let _ = done.send(());
        }
        if close {
            break;
        }
    }
}

/// Lets a repeated complaint through at most once per period, counting the ones held back.
struct Throttled {
    period: std::time::Duration,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl Throttled {
    fn new(period: std::time::Duration) -> Self {
        Throttled {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(complaints held back since the last one)` when this one may be printed.
    fn ready(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.period)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// An append-only NDJSON file that moves to a new file past a size limit. Writes go straight
/// to the file (the caller batches): a write that fails is cut off the file, so a file never
/// holds half a line and what reached it is exactly what was reported written.
pub struct RotatingWriter {
    dir: PathBuf,
    prefix: &'static str,
    limit: u64,
    file: Option<File>,
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
        let stamp = crate::clock::rfc3339_millis(crate::clock::unix_millis())
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
        self.file = Some(f);
        Ok(())
    }

    /// Appends whole lines (each ending in a newline), moving to a new file once the current
    /// one reaches its limit. On failure, the error and how many lines did reach the files.
    #[allow(
        clippy::expect_used,
        reason = "the file is opened at the top of the loop"
    )]
    pub fn write_batch(&mut self, lines: &[u8]) -> Result<(), (std::io::Error, u64)> {
        let mut rest = lines;
        let mut done = 0u64;
        while !rest.is_empty() {
            if self.file.is_none() || self.written >= self.limit {
                self.open().map_err(|e| (e, done))?;
            }
            let room = self.limit.saturating_sub(self.written) as usize;
            let (mut end, mut count) = (0, 0u64);
            for line in rest.split_inclusive(|b| *b == b'\n') {
                end += line.len();
                count += 1;
                if end >= room {
                    break;
                }
            }
            let (now, later) = rest.split_at(end);
            let f = self.file.as_mut().expect("opened above");
            if let Err(e) = f.write_all(now) {
                let _ = f.set_len(self.written);
                return Err((e, done));
            }
            self.written += now.len() as u64;
            done += count;
            rest = later;
        }
        Ok(())
    }

    /// Appends one record and a newline.
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        self.write_batch(&buf).map_err(|(e, _)| e)
    }
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
            max_text_bytes: 1024,
            feedback_window: 10,
            analytics_rows: 10,
        };
        let metrics = Arc::new(Metrics::default());
        let store = LogStore::start(&cfg, metrics.clone(), None).unwrap();
        for i in 0..500 {
            store.log(&json!({"i": i, "pad": "xxxxxxxxxxxxxxxxxxxx"}));
        }
        store.shutdown().await;
        let records =
            switchyard_learn::logfiles::read_records::<serde_json::Value>(&dir, "requests")
                .unwrap();
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
            store: None,
            tx: Some(tx),
            thread: Mutex::new(None),
            metrics: metrics.clone(),
        };
        store.log(&json!(1));
        store.log(&json!(2));
        assert_eq!(metrics.log_dropped.load(Ordering::Relaxed), 1);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn records_lost_to_a_full_disk_are_counted_and_cut_off() {
        // /dev/full fails every write with ENOSPC, as a full disk does.
        let dir = std::env::temp_dir().join(format!("sy-full-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = RotatingWriter::new(dir.clone(), "requests", 1 << 20);
        w.file = Some(OpenOptions::new().append(true).open("/dev/full").unwrap());
        let err = w.write_batch(b"{\"a\":1}\n{\"a\":2}\n").unwrap_err();
        assert_eq!((err.0.kind(), err.1), (std::io::ErrorKind::StorageFull, 0));

        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = mpsc::channel(100);
        let thread = std::thread::spawn({
            let m = metrics.clone();
            move || writer_loop(rx, w, m)
        });
        let store = LogStore {
            store: None,
            tx: Some(tx),
            thread: Mutex::new(None),
            metrics: metrics.clone(),
        };
        for i in 0..50 {
            store.log(&json!({"i": i}));
        }
        drop(store);
        thread.join().unwrap();
        assert_eq!(metrics.log_dropped.load(Ordering::Relaxed), 50);
        assert_eq!(metrics.log_written.load(Ordering::Relaxed), 0);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn clip_keeps_the_head_and_says_what_was_cut() {
        assert_eq!(clip("short", 5, 10), "short");
        assert_eq!(clip("ééééé", 10, 5), "éé…[6 more bytes not logged]");
        assert_eq!(clip("abcdef", 1000, 4), "abcd…[996 more bytes not logged]");
    }
}
