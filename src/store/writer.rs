//! The batched request writer: log records on their way into PostgreSQL's `requests`, queued,
//! batched, spooled while the store is down and counted.

use super::pg::Pg;
use crate::config::StoreConfig;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Counters of the batched writer.
#[derive(Default)]
pub struct WriterStats {
    pub written: AtomicU64,
    /// Records refused because the queue was full (never sent).
    pub dropped: AtomicU64,
    /// Records whose write failed (each try counts); they wait in the spool for the next.
    pub failed: AtomicU64,
    /// Records pushed out of a full spool (the store never got them).
    pub lost: AtomicU64,
    pub queued: AtomicU64,
    /// Records waiting in the spool to be written again.
    pub spooled: AtomicU64,
}

/// The batched request writer: records queue in a bounded channel and a task writes them in
/// batches of `batch` (or what is there after `flush`). A batch that cannot be written (the
/// store is down) waits in a spool of at most `queue` records and is written again, oldest
/// first, once the store answers; a full spool loses its oldest records and counts them. A
/// full queue drops the record and counts it; a replica killed outright loses what is queued
/// and spooled.
pub struct PgWriter {
    tx: mpsc::Sender<Vec<u8>>,
    pub stats: Arc<WriterStats>,
}

/// Batches that could not be written yet, bounded in records.
struct Spool {
    batches: VecDeque<Vec<Vec<u8>>>,
    records: usize,
    bound: usize,
}

impl Spool {
    /// Keeps a failed batch; returns how many older records were pushed out.
    fn push(&mut self, batch: Vec<Vec<u8>>) -> usize {
        self.records += batch.len();
        self.batches.push_back(batch);
        let mut lost = 0;
        while self.records > self.bound {
            let Some(front) = self.batches.front_mut() else {
                break;
            };
            let over = (self.records - self.bound).min(front.len());
            front.drain(..over);
            self.records -= over;
            lost += over;
            if front.is_empty() {
                self.batches.pop_front();
            }
        }
        lost
    }
}

impl PgWriter {
    pub fn start(pg: Arc<Pg>, cfg: &StoreConfig) -> PgWriter {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(cfg.queue);
        let stats = Arc::new(WriterStats::default());
        let (batch, flush) = (cfg.batch, cfg.flush);
        let s = stats.clone();
        let mut spool = Spool {
            batches: VecDeque::new(),
            records: 0,
            bound: cfg.queue,
        };
        tokio::spawn(async move {
            let mut lines = Vec::with_capacity(batch);
            let mut last_maintenance = std::time::Instant::now();
            let mut warned = false;
            loop {
                let deadline = tokio::time::sleep(flush);
                tokio::pin!(deadline);
                let closed = loop {
                    tokio::select! {
                        got = rx.recv() => match got {
                            Some(l) => {
                                lines.push(l);
                                if lines.len() >= batch { break false; }
                            }
                            None => break true,
                        },
                        _ = &mut deadline => break false,
                    }
                };
                if !lines.is_empty() {
                    let n = lines.len() as u64;
                    s.queued.fetch_sub(n, Ordering::Relaxed);
                    s.spooled.fetch_add(n, Ordering::Relaxed);
                    let lost = spool.push(std::mem::replace(&mut lines, Vec::with_capacity(batch)));
                    s.lost.fetch_add(lost as u64, Ordering::Relaxed);
                    s.spooled.fetch_sub(lost as u64, Ordering::Relaxed);
                }
                // Oldest first; stop at the first failure (the store is down) and try again
                // after the next flush.
                while let Some(b) = spool.batches.front() {
                    let n = b.len() as u64;
                    match pg.insert_requests(b).await {
                        Ok(_) => {
                            s.written.fetch_add(n, Ordering::Relaxed);
                            s.spooled.fetch_sub(n, Ordering::Relaxed);
                            spool.records -= b.len();
                            spool.batches.pop_front();
                            if warned {
                                tracing::info!("request records are written to PostgreSQL again");
                                warned = false;
                            }
                        }
                        Err(e) => {
                            s.failed.fetch_add(n, Ordering::Relaxed);
                            if !warned {
                                tracing::warn!("could not write {n} request records (kept in the spool, written again when PostgreSQL answers): {e}");
                                warned = true;
                            }
                            break;
                        }
                    }
                }
                if last_maintenance.elapsed() > Duration::from_secs(3600) {
                    last_maintenance = std::time::Instant::now();
                    if let Err(e) = pg.maintain().await {
                        tracing::warn!("partition maintenance failed: {e}");
                    }
                }
                if closed {
                    break;
                }
            }
        });
        PgWriter { tx, stats }
    }

    /// Queues a record without waiting; drops and counts it when the queue is full.
    pub fn offer(&self, line: Vec<u8>) {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(line).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Spool;
    use std::collections::VecDeque;

    #[test]
    fn a_full_spool_loses_its_oldest_records_and_counts_them() {
        let mut spool = Spool {
            batches: VecDeque::new(),
            records: 0,
            bound: 5,
        };
        let batch = |tag: u8, n: usize| (0..n).map(|i| vec![tag, i as u8]).collect::<Vec<_>>();
        assert_eq!(spool.push(batch(1, 3)), 0);
        assert_eq!(spool.push(batch(2, 3)), 1);
        assert_eq!(spool.records, 5);
        assert_eq!(spool.batches[0], vec![vec![1, 1], vec![1, 2]]);
        assert_eq!(spool.push(batch(3, 4)), 4);
        let left: Vec<Vec<u8>> = spool.batches.iter().flatten().cloned().collect();
        assert_eq!(
            left,
            vec![vec![2, 2], vec![3, 0], vec![3, 1], vec![3, 2], vec![3, 3]]
        );
    }
}
