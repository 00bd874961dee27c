//! `[store]`: the services a fleet of replicas shares — PostgreSQL for request records,
//! feedback and virtual keys, Redis for rate limits and budgets. Without the section (the
//! embedded default) each replica keeps its NDJSON files and in-memory counters.

use super::duration::parse_opt_duration;
use super::source::{ConfigError, Source};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileStore {
    postgres_env: Option<String>,
    redis_env: Option<String>,
    redis_prefix: Option<String>,
    batch: Option<usize>,
    queue: Option<usize>,
    flush: Option<String>,
    retention_days: Option<u32>,
    keys_refresh: Option<String>,
    keys_max_staleness: Option<String>,
    on_keys_stale: Option<FailMode>,
    on_redis_error: Option<FailMode>,
    redis_timeout: Option<String>,
}

/// What a limit check does when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Admit the request (and count it).
    Open,
    /// Refuse it with 503 (and count it).
    Closed,
}

/// The validated `[store]` section.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// PostgreSQL URL (a secret: read from the variable named by `postgres_env`).
    pub postgres_url: Option<String>,
    /// Redis URL (from the variable named by `redis_env`).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key Switchyard writes.
    pub redis_prefix: String,
    /// Records per insert.
    pub batch: usize,
    /// Records waiting for the writer; beyond this they are dropped and counted.
    pub queue: usize,
    /// A partial batch is written after this long.
    pub flush: Duration,
    /// Daily partitions older than this are dropped (0: kept).
    pub retention_days: u32,
    /// How often each replica reloads the virtual keys (revocation reaches every replica
    /// within this plus one query).
    pub keys_refresh: Duration,
    /// How long a replica that cannot reload the keys keeps trusting its last copy.
    pub keys_max_staleness: Duration,
    /// Past `keys_max_staleness`: refuse every virtual key (closed, the default) or go on.
    pub on_keys_stale: FailMode,
    /// Default for keys that do not choose: admit or refuse when Redis is unreachable.
    pub on_redis_error: FailMode,
    /// The longest a limit decision waits for Redis before `on_redis_error` decides.
    pub redis_timeout: Duration,
}

pub(super) fn store(
    raw: Option<&FileStore>,
    src: &Source,
) -> Result<Option<StoreConfig>, ConfigError> {
    let Some(s) = raw else {
        return Ok(None);
    };
    let err = |key: &str, reason: String| src.err(key, reason);
    let url = |field: &str, var: &Option<String>| -> Result<Option<String>, ConfigError> {
        match var {
            None => Ok(None),
            Some(v) => (src.env)(v)
                .filter(|u| !u.is_empty())
                .map(Some)
                .ok_or_else(|| {
                    err(
                        &format!("store.{field}"),
                        format!("environment variable {v} is not set"),
                    )
                }),
        }
    };
    let postgres_url = url("postgres_env", &s.postgres_env)?;
    let redis_url = url("redis_env", &s.redis_env)?;
    if postgres_url.is_none() && redis_url.is_none() {
        return Err(err(
            "store",
            "name at least one of postgres_env (shared records, feedback, keys) and redis_env (limits across replicas)".into(),
        ));
    }
    if let Some(u) = &postgres_url {
        if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
            return Err(err(
                "store.postgres_env",
                "the URL must start with postgres://".into(),
            ));
        }
    }
    if let Some(u) = &redis_url {
        if !u.starts_with("redis://") {
            return Err(err(
                "store.redis_env",
                "the URL must start with redis://".into(),
            ));
        }
    }
    let batch = s.batch.unwrap_or(500);
    if batch == 0 {
        return Err(err("store.batch", "must be at least 1".into()));
    }
    let keys_refresh = parse_opt_duration(&s.keys_refresh, "store.keys_refresh", &err)?
        .unwrap_or(Duration::from_millis(500));
    let keys_max_staleness =
        parse_opt_duration(&s.keys_max_staleness, "store.keys_max_staleness", &err)?
            .unwrap_or(Duration::from_secs(30));
    if keys_max_staleness <= keys_refresh {
        return Err(err(
            "store.keys_max_staleness",
            format!(
                "must be longer than keys_refresh ({} ms), got {} ms",
                keys_refresh.as_millis(),
                keys_max_staleness.as_millis()
            ),
        ));
    }
    let redis_timeout = parse_opt_duration(&s.redis_timeout, "store.redis_timeout", &err)?
        .unwrap_or(Duration::from_millis(250));
    if redis_timeout.is_zero() {
        return Err(err("store.redis_timeout", "must be above 0".into()));
    }
    Ok(Some(StoreConfig {
        postgres_url,
        redis_url,
        redis_prefix: s
            .redis_prefix
            .clone()
            .unwrap_or_else(|| "switchyard:".into()),
        batch,
        queue: s.queue.unwrap_or(16_384).max(batch),
        flush: parse_opt_duration(&s.flush, "store.flush", &err)?
            .unwrap_or(Duration::from_millis(200)),
        retention_days: s.retention_days.unwrap_or(30),
        keys_refresh,
        keys_max_staleness,
        on_keys_stale: s.on_keys_stale.unwrap_or(FailMode::Closed),
        on_redis_error: s.on_redis_error.unwrap_or(FailMode::Open),
        redis_timeout,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(store: &str, env: &'static [(&str, &str)]) -> Result<Config, String> {
        let text = format!("[providers.mock]\nkind = \"mock\"\n[store]\n{store}");
        Config::parse(&text, "s.toml", &|k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn urls_come_from_the_environment_and_errors_name_the_key() {
        let c = parse(
            "postgres_env = \"PG\"\nredis_env = \"RD\"\nflush = \"1s\"\n",
            &[("PG", "postgres://u:secret@h/db"), ("RD", "redis://h:6379")],
        )
        .unwrap();
        let s = c.store.unwrap();
        assert_eq!(s.postgres_url.as_deref(), Some("postgres://u:secret@h/db"));
        assert_eq!((s.batch, s.flush.as_millis()), (500, 1000));
        let e = parse("postgres_env = \"PG\"\n", &[]).unwrap_err();
        assert!(
            e.contains("store.postgres_env") && e.contains("PG is not set"),
            "{e}"
        );
        let e = parse("redis_env = \"RD\"\n", &[("RD", "http://h")]).unwrap_err();
        assert!(e.contains("redis://") && !e.contains("http://h"), "{e}");
        let e = parse("batch = 5\n", &[]).unwrap_err();
        assert!(e.contains("at least one of postgres_env"), "{e}");
        let e = parse(
            "postgres_env = \"PG\"\non_redis_error = \"maybe\"\n",
            &[("PG", "postgres://x")],
        )
        .unwrap_err();
        assert!(e.contains("on_redis_error"), "{e}");
        let e = parse(
            "postgres_env = \"PG\"\nkeys_refresh = \"5s\"\nkeys_max_staleness = \"2s\"\n",
            &[("PG", "postgres://x")],
        )
        .unwrap_err();
        assert!(
            e.contains("store.keys_max_staleness") && e.contains("longer than keys_refresh"),
            "{e}"
        );
        let s = parse("postgres_env = \"PG\"\n", &[("PG", "postgres://x")])
            .unwrap()
            .store
            .unwrap();
        assert_eq!(
            (
                s.keys_max_staleness.as_secs(),
                s.on_keys_stale,
                s.redis_timeout.as_millis()
            ),
            (30, super::FailMode::Closed, 250)
        );
    }
}
