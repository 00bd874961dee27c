//! PostgreSQL: the connection, the migrations (`switchyard migrate`), daily partitions with
//! retention, the batched request writer, feedback, and the queries behind `switchyard
//! export` and spend.

use super::scope::Scope;
use crate::config::StoreConfig;
use backon::{ExponentialBuilder, Retryable};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use switchyard_learn::schema::{AttemptRecord, FeedbackRecord, LogRecord};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::Json;
use tokio_postgres::{Client, Connection, NoTls, Socket};

/// Why the store failed (never shows the URL: it holds a password).
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// PostgreSQL refused a statement: its message and SQLSTATE code (e.g. `23505`, a
    /// unique violation).
    #[error("PostgreSQL: {message} (SQLSTATE {code})")]
    Database { code: String, message: String },
    /// The connection could not be made, or broke.
    #[error("PostgreSQL: {0}")]
    Connection(String),
    /// A file an export writes.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// What the store cannot do as asked (no `postgres_env`, an unknown grouping, ...).
    #[error("{0}")]
    Invalid(String),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> PgError {
        match e.as_db_error() {
            Some(db) => PgError::Database {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None => PgError::Connection(e.to_string()),
        }
    }
}

/// The migrations, in order (`migrations/NNNN_*.sql`); each runs once (recorded in
/// `switchyard_migrations`). A new one is a new file at the end of this list.
const MIGRATIONS: [&str; 3] = [
    include_str!("../../migrations/0001_requests_feedback_keys.sql"),
    include_str!("../../migrations/0002_analytics_tail.sql"),
    include_str!("../../migrations/0003_tenant_walls.sql"),
];

/// Delays between reconnection attempts after the connection to PostgreSQL ended.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// The advisory lock every replica takes before touching the schema.
const MIGRATION_LOCK: i64 = 7_263_001;

/// A feedback row as stored.
pub struct FeedbackRow<'a> {
    pub request_id: &'a str,
    pub source: &'a str,
    pub model: &'a str,
    pub score: f64,
    pub thumbs: Option<&'a str>,
    pub comment: Option<&'a str>,
    /// The key that gave it.
    pub key: Option<&'a str>,
}

/// A connection to the shared store that comes back by itself: when the connection ends
/// (PostgreSQL restarted, network cut), a task reconnects with capped exponential backoff and
/// swaps the new client in; queries meanwhile fail fast with an error.
pub struct Pg {
    url: String,
    client: RwLock<Arc<Client>>,
    up: AtomicBool,
    /// Unix ms when the connection was last seen ending (0: never).
    down_since_ms: AtomicU64,
    /// Connections re-established after one ended.
    pub reconnects: AtomicU64,
    retention_days: u32,
    /// Days (`YYYYMMDD`) whose partition exists.
    partitions: Mutex<HashSet<String>>,
}

type PgConnection = Connection<Socket, NoTlsStream>;

impl Pg {
    /// Connects; the connection runs on its own task, which reconnects when it ends.
    pub async fn connect(cfg: &StoreConfig) -> Result<Arc<Pg>, PgError> {
        let url = cfg
            .postgres_url
            .as_deref()
            .ok_or_else(|| PgError::Invalid("[store] names no postgres_env".into()))?;
        let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
        let pg = Arc::new(Pg {
            url: url.to_string(),
            client: RwLock::new(Arc::new(client)),
            up: AtomicBool::new(true),
            down_since_ms: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            retention_days: cfg.retention_days,
            partitions: Mutex::default(),
        });
        watch(Arc::downgrade(&pg), conn);
        Ok(pg)
    }

    /// The current client (a query on it fails while the connection is down).
    pub fn client(&self) -> Arc<Client> {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the connection is up; when it is not, since when (Unix ms).
    pub fn health(&self) -> (bool, Option<u64>) {
        let up = self.up.load(Ordering::Relaxed);
        (
            up,
            (!up).then(|| self.down_since_ms.load(Ordering::Relaxed)),
        )
    }

    /// Applies the migrations not applied yet; returns how many ran. Everything, the
    /// bookkeeping table included, runs under one advisory lock, so replicas started at the
    /// same moment on an empty database take turns.
    pub async fn migrate(&self) -> Result<usize, PgError> {
        let client = self.client();
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let result = self.apply(&client).await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await?;
        let ran = result?;
        self.maintain().await?;
        Ok(ran)
    }

    async fn apply(&self, client: &Client) -> Result<usize, PgError> {
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS switchyard_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            .await?;
        let done: i32 = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM switchyard_migrations",
                &[],
            )
            .await?
            .get(0);
        let mut ran = 0;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            client.batch_execute(sql).await?;
            client
                .execute(
                    "INSERT INTO switchyard_migrations (version) VALUES ($1)",
                    &[&(i as i32 + 1)],
                )
                .await?;
            ran += 1;
        }
        Ok(ran)
    }

    /// Creates the partitions of yesterday to the day after tomorrow and drops those older
    /// than the retention.
    pub async fn maintain(&self) -> Result<(), PgError> {
        let now = crate::clock::unix_millis();
        for d in -1..=2i64 {
            self.ensure_partition((now as i64 + d * 86_400_000) as u64)
                .await?;
        }
        if self.retention_days > 0 {
            let rows = self
                .client()
                .query(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'requests'",
                    &[],
                )
                .await?;
            let oldest = day_of(now - u64::from(self.retention_days) * 86_400_000);
            for r in rows {
                let name: String = r.get(0);
                if let Some(day) = name.strip_prefix("requests_") {
                    if day < oldest.as_str() {
                        self.client()
                            .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                            .await?;
                        self.partitions
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(day);
                    }
                }
            }
        }
        Ok(())
    }

    /// The partition of the day of `ts_ms` exists afterwards.
    async fn ensure_partition(&self, ts_ms: u64) -> Result<(), PgError> {
        let day = day_of(ts_ms);
        if self
            .partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&day)
        {
            return Ok(());
        }
        let start = ts_ms / 86_400_000 * 86_400_000;
        let (from, to) = (
            crate::clock::rfc3339_millis(start),
            crate::clock::rfc3339_millis(start + 86_400_000),
        );
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS requests_{day} PARTITION OF requests FOR VALUES FROM ('{from}') TO ('{to}')"
        );
        match self.client().batch_execute(&sql).await {
            Ok(()) => {}
            // Another replica created it at the same moment.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_TABLE) => {}
            Err(e) => return Err(e.into()),
        }
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(day);
        Ok(())
    }

    /// Inserts request records (their NDJSON lines) in one statement.
    pub async fn insert_requests(&self, lines: &[Vec<u8>]) -> Result<u64, PgError> {
        let records: Vec<LogRecord> = lines
            .iter()
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        let mut days = HashSet::new();
        for r in &records {
            if days.insert(day_of(r.ts_ms)) {
                self.ensure_partition(r.ts_ms).await?;
            }
        }
        let text = |f: &dyn for<'r> Fn(&'r LogRecord<'r>) -> Option<&'r str>| {
            records
                .iter()
                .map(|r| f(r).map(str::to_string))
                .collect::<Vec<_>>()
        };
        let num = |f: &dyn Fn(&LogRecord) -> u64| {
            records.iter().map(|r| f(r) as i64).collect::<Vec<i64>>()
        };
        let status: Vec<i32> = records.iter().map(|r| i32::from(r.status)).collect();
        let cost: Vec<f64> = records.iter().map(|r| r.cost_usd).collect();
        let jsonb: Vec<Json<&LogRecord>> = records.iter().map(Json).collect();
        let n = self
            .client()
            .execute(
                "INSERT INTO requests (ts, request_id, endpoint, status, key_id, team, user_id, model, router, route, variant, prompt_tokens, completion_tokens, cost_usd, record)
                 SELECT to_timestamp(t / 1000.0), id, ep, st, k, tm, u, m, ro, rt, v, pt, ct, c, rec
                 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::float8[], $15::jsonb[])
                 AS u(t, id, ep, st, k, tm, u, m, ro, rt, v, pt, ct, c, rec)",
                &[
                    &num(&|r| r.ts_ms),
                    &text(&|r| Some(&r.request_id)),
                    &text(&|r| Some(&r.endpoint)),
                    &status,
                    &text(&|r| r.key.as_deref()),
                    &text(&|r| {
                        r.team.as_deref().or_else(|| {
                            r.metadata.as_ref()?.get("team")?.as_str()
                        })
                    }),
                    &text(&|r| r.user.as_deref()),
                    &text(&|r| r.model.as_deref()),
                    &text(&|r| r.router.as_deref()),
                    &text(&|r| r.route.as_deref()),
                    &text(&|r| r.variant.as_deref()),
                    &num(&|r| r.prompt_tokens),
                    &num(&|r| r.completion_tokens),
                    &cost,
                    &jsonb,
                ],
            )
            .await?;
        Ok(n)
    }

    /// The models a logged request was sent to (the serving one first) and the key that made
    /// it, if any replica logged it.
    pub async fn request_served(
        &self,
        request_id: &str,
    ) -> Result<Option<(Vec<String>, Option<String>)>, PgError> {
        let row = self
            .client()
            .query_opt(
                "SELECT model, record->'attempts', key_id FROM requests WHERE request_id = $1 LIMIT 1",
                &[&request_id],
            )
            .await?;
        Ok(row.and_then(|r| {
            let served: Option<String> = r.get(0);
            let served = served?;
            let attempts: Option<Json<Vec<AttemptRecord>>> = r.try_get(1).ok().flatten();
            let mut models = vec![served.clone()];
            for a in attempts.into_iter().flat_map(|Json(a)| a) {
                if !models.contains(&a.model) {
                    models.push(a.model);
                }
            }
            Some((models, r.get(2)))
        }))
    }

    /// Request records inserted after `after` (by insertion order), oldest first, at most
    /// `limit`; with no `after`, the newest `limit`. Returns the records and the last `seq`.
    pub async fn tail_requests(
        &self,
        after: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<Value>, Option<i64>), PgError> {
        let rows = match after {
            Some(seq) => {
                self.client()
                    .query(
                        "SELECT seq, record FROM requests WHERE seq > $1 ORDER BY seq LIMIT $2",
                        &[&seq, &limit],
                    )
                    .await?
            }
            None => {
                let mut rows = self
                    .client()
                    .query(
                        "SELECT seq, record FROM requests ORDER BY seq DESC LIMIT $1",
                        &[&limit],
                    )
                    .await?;
                rows.reverse();
                rows
            }
        };
        let last = rows.last().map(|r| r.get::<_, i64>(0)).or(after);
        Ok((rows.iter().map(|r| r.get::<_, Value>(1)).collect(), last))
    }

    /// Feedback stored or replaced since `since_ms`, as feedback log records.
    pub async fn feedback_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<FeedbackRecord<'static>>, PgError> {
        let rows = self
            .client()
            .query(
                &format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE ts >= to_timestamp($1::bigint / 1000.0) ORDER BY ts"),
                &[&since_ms],
            )
            .await?;
        Ok(rows.iter().map(feedback_record).collect())
    }

    /// A key's spend since the start of the UTC day and since the start of the month (Unix
    /// seconds), from the recorded requests.
    pub async fn key_spend(
        &self,
        key_id: &str,
        day_start: i64,
        month_start: i64,
    ) -> Result<(f64, f64), PgError> {
        let row = self
            .client()
            .query_one(
                "SELECT coalesce(sum(cost_usd) FILTER (WHERE ts >= to_timestamp($2::bigint)), 0)::float8, coalesce(sum(cost_usd), 0)::float8
                 FROM requests WHERE key_id = $1 AND ts >= to_timestamp($3::bigint)",
                &[&key_id, &day_start, &month_start],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// One stored request record.
    pub async fn request_record(
        &self,
        request_id: &str,
    ) -> Result<Option<LogRecord<'static>>, PgError> {
        let row = self
            .client()
            .query_opt(
                "SELECT record FROM requests WHERE request_id = $1 LIMIT 1",
                &[&request_id],
            )
            .await?;
        Ok(row.and_then(|r| r.try_get::<_, Json<LogRecord>>(0).ok().map(|Json(r)| r)))
    }

    /// Stores feedback with the key that gave it; the last per (request, source) counts.
    pub async fn upsert_feedback(&self, f: &FeedbackRow<'_>) -> Result<(), PgError> {
        self.client()
            .execute(
                "INSERT INTO feedback (request_id, source, model, score, thumbs, comment, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (request_id, source) DO UPDATE SET model = EXCLUDED.model, score = EXCLUDED.score,
                 thumbs = EXCLUDED.thumbs, comment = EXCLUDED.comment, key_id = EXCLUDED.key_id, ts = now()",
                &[
                    &f.request_id,
                    &f.source,
                    &f.model,
                    &f.score,
                    &f.thumbs,
                    &f.comment,
                    &f.key,
                ],
            )
            .await?;
        Ok(())
    }

    /// Writes every stored request and feedback as NDJSON files in `dir` (what the trainer and
    /// the evals read); returns the counts. Rows stream from the server, so memory stays flat
    /// however large the store.
    pub async fn export(&self, dir: &std::path::Path) -> Result<(u64, u64), PgError> {
        std::fs::create_dir_all(dir).map_err(|source| PgError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let requests = self
            .export_rows(
                "SELECT record FROM requests ORDER BY ts",
                &dir.join("requests-store.ndjson"),
                |r| r.get::<_, Value>(0),
            )
            .await?;
        let feedback = self
            .export_rows(
                &format!("SELECT {FEEDBACK_COLUMNS} FROM feedback ORDER BY ts"),
                &dir.join("feedback-store.ndjson"),
                feedback_record,
            )
            .await?;
        Ok((requests, feedback))
    }

    /// Writes each row of `sql` as one JSON line (`line` makes it) to `path`; returns how many.
    async fn export_rows<T: serde::Serialize>(
        &self,
        sql: &str,
        path: &std::path::Path,
        line: impl Fn(&tokio_postgres::Row) -> T,
    ) -> Result<u64, PgError> {
        use futures_util::StreamExt;
        use std::io::Write;
        let io = |source: std::io::Error| PgError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        let rows = self
            .client()
            .query_raw(sql, std::iter::empty::<&str>())
            .await?;
        futures_util::pin_mut!(rows);
        let mut n = 0;
        while let Some(row) = rows.next().await {
            serde_json::to_writer(&mut out, &line(&row?)).map_err(|e| io(e.into()))?;
            out.write_all(b"\n").map_err(io)?;
            n += 1;
        }
        out.flush().map_err(io)?;
        Ok(n)
    }

    /// Spend since `since_ms` grouped by `by` (key, team, model, router or day), over the
    /// requests `scope` may see.
    pub async fn spend(
        &self,
        by: &str,
        since_ms: u64,
        scope: &Scope,
    ) -> Result<Vec<Value>, PgError> {
        let column = match by {
            "key" => "key_id",
            "team" => "team",
            "model" => "model",
            "router" => "router",
            "day" => "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            other => {
                return Err(PgError::Invalid(format!(
                    "cannot group spend by {other:?}; use key, team, model, router or day"
                )))
            }
        };
        let (wall, who) = match scope {
            Scope::All => ("$2::text IS NULL", None),
            Scope::Team(t) => ("record->>'team' = $2", Some(t.as_str())),
            Scope::Key(k) => ("key_id = $2", Some(k.as_str())),
        };
        let rows = self
            .client()
            .query(
                &format!(
                    "SELECT {column}, count(*), coalesce(sum(cost_usd), 0), coalesce(sum(prompt_tokens), 0)::bigint, coalesce(sum(completion_tokens), 0)::bigint
                     FROM requests WHERE ts >= to_timestamp($1::bigint / 1000.0) AND {wall} GROUP BY 1 ORDER BY 3 DESC, 1"
                ),
                &[&(since_ms as i64), &who],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                json!({by: r.get::<_, Option<String>>(0), "requests": r.get::<_, i64>(1), "cost_usd": r.get::<_, f64>(2),
                       "prompt_tokens": r.get::<_, i64>(3), "completion_tokens": r.get::<_, i64>(4)})
            })
            .collect())
    }
}

/// Runs a connection until it ends, then reconnects with capped exponential backoff (jittered)
/// and swaps the new client into `pg`; stops when `pg` is gone.
fn watch(pg: Weak<Pg>, conn: PgConnection) {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!("{}", PgError::from(e));
        }
        let Some(url) = pg.upgrade().map(|p| {
            p.up.store(false, Ordering::Relaxed);
            p.down_since_ms
                .store(crate::clock::unix_millis(), Ordering::Relaxed);
            p.url.clone()
        }) else {
            return;
        };
        tracing::error!("PostgreSQL connection ended; reconnecting");
        let attempt = || async {
            if pg.strong_count() == 0 {
                return Ok(None);
            }
            tokio_postgres::connect(&url, NoTls).await.map(Some)
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(RECONNECT_MIN)
            .with_max_delay(RECONNECT_MAX)
            .with_jitter()
            .without_max_times();
        let Ok(Some((client, conn))) = attempt.retry(backoff).sleep(tokio::time::sleep).await
        else {
            return;
        };
        let Some(p) = pg.upgrade() else { return };
        *p.client.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(client);
        p.up.store(true, Ordering::Relaxed);
        p.reconnects.fetch_add(1, Ordering::Relaxed);
        tracing::info!("PostgreSQL connection re-established");
        watch(pg, conn);
    });
}

/// `YYYYMMDD` of a Unix time in ms (UTC).
fn day_of(ts_ms: u64) -> String {
    crate::clock::rfc3339_millis(ts_ms)[..10].replace('-', "")
}

/// The feedback columns [`feedback_record`] reads, in its order.
const FEEDBACK_COLUMNS: &str = "request_id, source, model, score, thumbs, comment, (extract(epoch FROM ts) * 1000)::bigint, key_id";

/// A feedback row (selected with [`FEEDBACK_COLUMNS`]) as a feedback log record.
fn feedback_record(r: &tokio_postgres::Row) -> FeedbackRecord<'static> {
    let ts_ms = r.get::<_, i64>(6).max(0) as u64;
    FeedbackRecord {
        ts: crate::clock::rfc3339_millis(ts_ms).into(),
        ts_ms,
        request_id: r.get::<_, String>(0).into(),
        source: r.get::<_, String>(1).into(),
        model: Some(r.get::<_, String>(2).into()),
        score: r.get(3),
        thumbs: r.get::<_, Option<String>>(4).map(Into::into),
        comment: r.get::<_, Option<String>>(5).map(Into::into),
        key: r.get::<_, Option<String>>(7).map(Into::into),
    }
}
