//! The operator commands on the shared store: `switchyard migrate`, `keys …`, `spend`,
//! `export`. Each connects with the config's `[store]`, does one thing and returns what to print.

use super::keys::VirtualKey;
use super::pg::Pg;
use super::StoreError;
use crate::config::Config;
use serde_json::{json, Value};

async fn connect(config: &Config) -> Result<std::sync::Arc<Pg>, StoreError> {
    let cfg = config
        .store
        .as_ref()
        .filter(|s| s.postgres_url.is_some())
        .ok_or_else(|| {
            StoreError::Refused(format!(
                "{} has no [store] postgres_env: these commands work on the shared PostgreSQL store",
                config.source
            ))
        })?;
    Ok(Pg::connect(cfg).await?)
}

/// `switchyard migrate`.
pub async fn migrate(config: &Config) -> Result<String, StoreError> {
    let pg = connect(config).await?;
    let ran = pg.migrate().await?;
    Ok(format!("migrations applied: {ran} new; partitions for yesterday to the day after tomorrow are in place"))
}

/// `switchyard keys create`: prints the key (once) and its policy.
pub async fn create_key(config: &Config, spec: VirtualKey) -> Result<String, StoreError> {
    let pg = connect(config).await?;
    pg.migrate().await?;
    let (key, secret) = pg.create_key(&spec).await?;
    Ok(format!(
        "{}\nkey (shown once; only its hash is stored): {secret}",
        serde_json::to_string_pretty(&key).unwrap_or_default()
    ))
}

/// `switchyard keys list`.
pub async fn list_keys(config: &Config) -> Result<Value, StoreError> {
    let pg = connect(config).await?;
    let keys = pg.list_keys().await?;
    Ok(json!(keys))
}

/// `switchyard keys revoke ID`.
pub async fn revoke_key(config: &Config, id: &str) -> Result<String, StoreError> {
    let pg = connect(config).await?;
    match pg.revoke_key(id).await? {
        true => Ok(format!(
            "{id} revoked (every replica refuses it within [store] keys_refresh)"
        )),
        false => Err(StoreError::Refused(format!("no active key {id:?}"))),
    }
}

/// `switchyard keys rotate ID`: prints the new key (once).
pub async fn rotate_key(config: &Config, id: &str) -> Result<String, StoreError> {
    let pg = connect(config).await?;
    match pg.rotate_key(id).await? {
        Some(secret) => Ok(format!("{id} rotated; the old key stops working within [store] keys_refresh\nnew key (shown once): {secret}")),
        None => Err(StoreError::Refused(format!("no active key {id:?}"))),
    }
}

/// `switchyard spend`.
pub async fn spend(config: &Config, by: &str, since_ms: u64) -> Result<Value, StoreError> {
    let pg = connect(config).await?;
    let rows = pg.spend(by, since_ms, &super::scope::Scope::All).await?;
    Ok(json!({"by": by, "since_ms": since_ms, "rows": rows}))
}

/// `switchyard export --out DIR`.
pub async fn export(config: &Config, out: &std::path::Path) -> Result<String, StoreError> {
    let pg = connect(config).await?;
    let (requests, feedback) = pg.export(out).await?;
    Ok(format!(
        "{requests} requests and {feedback} feedback records written to {} (train with `switchyard train --logs {}`)",
        out.display(),
        out.display()
    ))
}
