//! Virtual keys: created, listed, revoked and rotated with `switchyard keys …`, stored in
//! PostgreSQL as SHA-256 hashes (the key itself is shown once, at creation or rotation). Each
//! replica reloads the active keys every `[store] keys_refresh`, so a revocation reaches every
//! replica within that bound plus one query.

use super::pg::{Pg, PgError};
use crate::config::store::FailMode;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A virtual key's policy.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct VirtualKey {
    pub id: String,
    pub name: String,
    /// The team it belongs to: analytics, spend and feedback show it only its team's requests
    /// (a key without a team sees only its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Models and routers (`router/NAME`) it may use; empty: all.
    pub models: Vec<String>,
    /// Merged into each request's metadata (the key's values win), visible to CEL.
    pub metadata: Map<String, Value>,
    /// Requests and tokens per minute; budgets in USD per UTC day and month (None: no limit).
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub budget_day_usd: Option<f64>,
    pub budget_month_usd: Option<f64>,
    /// When Redis is unreachable: admit or refuse (None: `[store] on_redis_error`).
    pub on_redis_error: Option<FailMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<bool>,
}

/// The SHA-256 of a key, as stored.
pub fn hash(secret: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn secret() -> String {
    format!(
        "sk-sy-{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

const COLUMNS: &str = "id, name, models, metadata, rpm, tpm, budget_day_usd, budget_month_usd, on_redis_error, revoked_at IS NOT NULL, hash, team";

fn from_row(r: &tokio_postgres::Row) -> (String, VirtualKey) {
    let metadata: Value = r.get(3);
    let mode: Option<String> = r.get(8);
    (
        r.get(10),
        VirtualKey {
            id: r.get(0),
            name: r.get(1),
            models: r.get(2),
            metadata: metadata.as_object().cloned().unwrap_or_default(),
            rpm: r.get(4),
            tpm: r.get(5),
            budget_day_usd: r.get(6),
            budget_month_usd: r.get(7),
            on_redis_error: mode.and_then(|m| serde_json::from_value(Value::String(m)).ok()),
            revoked: Some(r.get(9)),
            team: r.get(11),
        },
    )
}

impl Pg {
    /// Creates a key; returns it with its secret (shown once). A key without a team takes the
    /// `team` of its metadata, and a key with one carries it in its metadata too (CEL sees it).
    pub async fn create_key(&self, k: &VirtualKey) -> Result<(VirtualKey, String), PgError> {
        let mut k = k.clone();
        if k.team.is_none() {
            k.team = k
                .metadata
                .get("team")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if let Some(team) = &k.team {
            k.metadata
                .insert("team".into(), Value::String(team.clone()));
        }
        let secret = secret();
        let id = format!("vk_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mode = k.on_redis_error.map(|m| match m {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        });
        self.client()
            .execute(
                "INSERT INTO virtual_keys (id, hash, name, models, metadata, rpm, tpm, budget_day_usd, budget_month_usd, on_redis_error, team)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[&id, &hash(&secret), &k.name, &k.models, &Value::Object(k.metadata.clone()), &k.rpm, &k.tpm, &k.budget_day_usd, &k.budget_month_usd, &mode, &k.team],
            )
            .await?;
        Ok((
            VirtualKey {
                id,
                revoked: Some(false),
                ..k
            },
            secret,
        ))
    }

    /// Every key, revoked ones included.
    pub async fn list_keys(&self) -> Result<Vec<VirtualKey>, PgError> {
        let rows = self
            .client()
            .query(
                &format!("SELECT {COLUMNS} FROM virtual_keys ORDER BY created_at"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| from_row(r).1).collect())
    }

    /// Revokes a key; false when there is no active key with that id.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, PgError> {
        let n = self
            .client()
            .execute("UPDATE virtual_keys SET revoked_at = now(), updated_at = now() WHERE id = $1 AND revoked_at IS NULL", &[&id])
            .await?;
        Ok(n == 1)
    }

    /// Gives a key a new secret (the old one stops working like a revoked key); returns it.
    pub async fn rotate_key(&self, id: &str) -> Result<Option<String>, PgError> {
        let secret = secret();
        let n = self
            .client()
            .execute("UPDATE virtual_keys SET hash = $2, updated_at = now() WHERE id = $1 AND revoked_at IS NULL", &[&id, &hash(&secret)])
            .await?;
        Ok((n == 1).then_some(secret))
    }

    async fn active_keys(&self) -> Result<HashMap<String, Arc<VirtualKey>>, PgError> {
        let rows = self
            .client()
            .query(
                &format!("SELECT {COLUMNS} FROM virtual_keys WHERE revoked_at IS NULL"),
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let (h, k) = from_row(r);
                (h, Arc::new(k))
            })
            .collect())
    }
}

/// The active keys by hash, reloaded every `refresh` by a background task. When reloading
/// fails for longer than `max_staleness` (the store is unreachable, so a revocation could be
/// missed), [`KeyCache::find`] refuses every key unless the config fails open.
pub struct KeyCache {
    keys: RwLock<HashMap<String, Arc<VirtualKey>>>,
    /// Unix ms of the last successful reload.
    refreshed_ms: AtomicU64,
    max_staleness: Duration,
    on_stale: FailMode,
}

/// Why a key could not be checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Stale {
    pub seconds: u64,
}

impl KeyCache {
    /// Loads the keys once, then keeps reloading them.
    pub async fn start(
        pg: Arc<Pg>,
        refresh: Duration,
        max_staleness: Duration,
        on_stale: FailMode,
    ) -> Result<Arc<KeyCache>, PgError> {
        let cache = Arc::new(KeyCache {
            keys: RwLock::new(pg.active_keys().await?),
            refreshed_ms: AtomicU64::new(crate::clock::unix_millis()),
            max_staleness,
            on_stale,
        });
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(refresh).await;
                let Some(cache) = weak.upgrade() else { break };
                match pg.active_keys().await {
                    Ok(keys) => {
                        *cache.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
                        cache
                            .refreshed_ms
                            .store(crate::clock::unix_millis(), Ordering::Relaxed);
                        if failing {
                            tracing::info!("virtual keys reloaded again");
                            failing = false;
                        }
                    }
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(
                            "could not reload the virtual keys (keeping the last set for at most [store] keys_max_staleness): {e}"
                        )
                    }
                    Err(_) => {}
                }
            }
        });
        Ok(cache)
    }

    /// Seconds since the keys were last reloaded.
    pub fn staleness_secs(&self) -> u64 {
        self.age_ms() / 1000
    }

    fn age_ms(&self) -> u64 {
        crate::clock::unix_millis().saturating_sub(self.refreshed_ms.load(Ordering::Relaxed))
    }

    /// `Err` when the keys are older than `keys_max_staleness` and the config fails closed.
    fn fresh(&self) -> Result<(), Stale> {
        let age = self.age_ms();
        if age > self.max_staleness.as_millis() as u64 && self.on_stale == FailMode::Closed {
            return Err(Stale {
                seconds: age / 1000,
            });
        }
        Ok(())
    }

    /// Whether keys are served (not past `keys_max_staleness`, or the config fails open).
    pub fn usable(&self) -> bool {
        self.fresh().is_ok()
    }

    /// The active key with this secret; `Err` when the keys are older than
    /// `keys_max_staleness` and the config fails closed.
    pub fn find(&self, secret: &str) -> Result<Option<Arc<VirtualKey>>, Stale> {
        self.fresh()?;
        Ok(self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash(secret))
            .cloned())
    }
}
