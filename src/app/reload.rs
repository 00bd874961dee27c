//! Reloads while serving: on SIGHUP the whole config when it came from a file (else the learned
//! router), and when the watched config file (`server.watch_config`) or the artifact
//! (`[auto] watch`) changes. A broken config or artifact is refused and the running one stays.

use crate::config::{Config, ConfigError};
use crate::http::state::{AppState, Reloadable, StateError};
use std::path::Path;
use std::sync::Arc;

/// Why a config reload was refused.
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the reload panicked: {0}")]
    Panicked(String),
}

/// How often the artifact and (with `server.watch_config`) the config file are checked.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Reloads on SIGHUP — the whole config when it came from a file, else the learned router —
/// and when the watched config file or artifact changes.
pub async fn reloader(live: Arc<Reloadable>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut config_seen = live.config_path().and_then(file_signature);
    loop {
        #[cfg(unix)]
        let signalled = tokio::select! {
            Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            _ = tokio::time::sleep(POLL) => false,
        };
        #[cfg(not(unix))]
        let signalled = {
            tokio::time::sleep(POLL).await;
            false
        };
        let state = live.get();
        if let Some(path) = live.config_path() {
            let now = file_signature(path);
            let changed = state.config.server.watch_config && now != config_seen;
            config_seen = now;
            if signalled || changed {
                reload_config(&live, path).await;
                continue;
            }
        }
        let Some(cfg) = state.config.auto.as_ref() else {
            continue;
        };
        if !(signalled || (cfg.watch && state.planner.auto.changed(cfg))) {
            continue;
        }
        let s = state.clone();
        let result = tokio::task::spawn_blocking(move || {
            s.config.auto.as_ref().map(|cfg| s.planner.auto.reload(cfg))
        })
        .await;
        match result {
            Ok(None) => {}
            Ok(Some(Ok(version))) => {
                state
                    .metrics
                    .auto_reloads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(version, signalled, "learned router reloaded")
            }
            Ok(Some(Err(e))) => {
                state
                    .metrics
                    .auto_reload_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!("learned router reload refused, keeping the current one: {e}")
            }
            Err(e) => tracing::error!("learned router reload panicked: {e}"),
        }
    }
}

/// Size and modification time of a file, to notice edits.
fn file_signature(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// Reads, validates and applies the config file; a broken file is refused with file, key and
/// reason and the running config stays. Settings that only apply at start are named.
async fn reload_config(live: &Arc<Reloadable>, path: &Path) {
    use std::sync::atomic::Ordering::Relaxed;
    let old = live.get();
    let (path, previous) = (path.to_path_buf(), old.clone());
    let built = tokio::task::spawn_blocking(move || {
        let config = Config::load(&path)?;
        let restart: Vec<&str> = [
            ("server.listen", config.server.listen != previous.config.server.listen),
            ("server.read_timeout", config.server.read_timeout != previous.config.server.read_timeout),
            ("server.shutdown_grace", config.server.shutdown_grace != previous.config.server.shutdown_grace),
            ("logging", config.logging.dir != previous.config.logging.dir
                || config.logging.enabled != previous.config.logging.enabled
                || config.logging.buffer != previous.config.logging.buffer
                || config.logging.rotate_bytes != previous.config.logging.rotate_bytes
                || config.logging.feedback_window != previous.config.logging.feedback_window),
        ]
        .into_iter()
        .filter_map(|(k, changed)| changed.then_some(k))
        .collect();
        if !restart.is_empty() {
            tracing::warn!(
                "config reload: {} changed; those take effect at the next restart (logging.log_text and logging.max_text_bytes apply now)",
                restart.join(", ")
            );
        }
        Ok(AppState::new(config, Some(&previous), None)?)
    })
    .await
    .unwrap_or_else(|e| Err(ReloadError::Panicked(e.to_string())));
    match built {
        Ok(state) => {
            live.set(state);
            old.metrics.config_reloads.fetch_add(1, Relaxed);
            tracing::info!(
                "config reloaded; requests in flight finish on the config they started with"
            );
        }
        Err(e) => {
            old.metrics.config_reload_failures.fetch_add(1, Relaxed);
            tracing::error!("config reload refused, keeping the running config: {e}");
        }
    }
}
