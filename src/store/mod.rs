//! The services a fleet of replicas shares (`[store]`): PostgreSQL for request records,
//! feedback and virtual keys ([`pg`], [`keys`]), Redis for rate limits and budgets ([`limits`]);
//! [`scope`] is the tenant wall every reader applies.
//! Without `[store]` none of this runs and each replica keeps its NDJSON files. Imports
//! `config`, `clock`; `observe`, `http` and `app` import it.

pub mod admin;
pub mod keys;
pub mod limits;
pub mod pg;
pub mod scope;
pub mod writer;

use crate::config::StoreConfig;
use keys::KeyCache;
use limits::Limits;
use pg::{Pg, PgError};
use std::sync::Arc;
use writer::PgWriter;

/// Why the shared store could not do what was asked (never shows a URL: it holds a password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// What the store refuses: no store configured for a command, an unknown key.
    #[error("{0}")]
    Refused(String),
}

/// The connected store of a server.
pub struct Store {
    pub pg: Option<Arc<Pg>>,
    pub writer: Option<PgWriter>,
    pub keys: Option<Arc<KeyCache>>,
    pub limits: Option<Limits>,
}

impl Store {
    /// Connects to what `[store]` names, applies migrations and starts the writer and the
    /// key reloader. Errors name the service, never its URL.
    pub async fn connect(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let (pg, writer, keys) = match &cfg.postgres_url {
            None => (None, None, None),
            Some(_) => {
                let pg = Pg::connect(cfg).await?;
                pg.migrate().await?;
                let writer = PgWriter::start(pg.clone(), cfg);
                let keys = KeyCache::start(
                    pg.clone(),
                    cfg.keys_refresh,
                    cfg.keys_max_staleness,
                    cfg.on_keys_stale,
                )
                .await?;
                (Some(pg), Some(writer), Some(keys))
            }
        };
        let limits = match &cfg.redis_url {
            None => None,
            Some(url) => Some(
                Limits::connect(
                    url,
                    &cfg.redis_prefix,
                    cfg.on_redis_error,
                    cfg.redis_timeout,
                    pg.clone(),
                )
                .await?,
            ),
        };
        Ok(Store {
            pg,
            writer,
            keys,
            limits,
        })
    }
}
