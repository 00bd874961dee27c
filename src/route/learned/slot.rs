//! The live learned router. A reload swaps it atomically: requests keep the `Arc` they started
//! with, and a broken artifact is refused while the old router stays.

use super::AutoRouter;
use crate::config::AutoConfig;
use crate::live::LiveStats;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;
use switchyard_learn::artifact::artifact_dir;
use switchyard_learn::LearnError;

/// What identifies the artifact on disk: the resolved directory and its files' modification times.
type Signature = (PathBuf, Option<SystemTime>, Option<SystemTime>);

fn signature(cfg: &AutoConfig) -> Option<Signature> {
    let dir = artifact_dir(&cfg.artifact).ok()?;
    let mtime = |name: &str| {
        std::fs::metadata(dir.join(name))
            .and_then(|m| m.modified())
            .ok()
    };
    Some((dir.clone(), mtime("weights.json"), mtime("manifest.json")))
}

/// Why `model: "auto"` cannot be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error("learned routing is not configured (no [auto] section in the config)")]
    NotConfigured,
    #[error(transparent)]
    Load(#[from] LearnError),
}

/// The live learned router. A reload swaps it atomically: requests keep the `Arc` they started
/// with, and a broken artifact is refused while the old router stays.
pub struct AutoSlot {
    current: RwLock<Result<Arc<AutoRouter>, Unavailable>>,
    seen: Mutex<Option<Signature>>,
    live: Arc<LiveStats>,
}

impl AutoSlot {
    /// Loads the configured router, or records why `auto` is unavailable.
    /// Its routers read the server's `live` estimates.
    pub fn load(cfg: Option<&AutoConfig>, live: &Arc<LiveStats>) -> AutoSlot {
        let (current, seen) = match cfg {
            None => (Err(Unavailable::NotConfigured), None),
            Some(c) => (
                AutoRouter::load(c)
                    .map(|r| Arc::new(r.with_live(live.clone())))
                    .map_err(Unavailable::from),
                signature(c),
            ),
        };
        AutoSlot {
            current: RwLock::new(current),
            seen: Mutex::new(seen),
            live: live.clone(),
        }
    }

    /// The router requests should use now, or why there is none.
    pub fn get(&self) -> Result<Arc<AutoRouter>, Unavailable> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the artifact on disk changed since the last load or check.
    pub fn changed(&self, cfg: &AutoConfig) -> bool {
        let now = signature(cfg);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *seen != now;
        *seen = now;
        changed
    }

    /// Loads the artifact again (blocking). On success the new router replaces the old one and
    /// its version is returned; on failure the old router stays and the reason is returned.
    pub fn reload(&self, cfg: &AutoConfig) -> Result<String, LearnError> {
        let loaded = AutoRouter::load(cfg).map(|r| Arc::new(r.with_live(self.live.clone())));
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        match loaded {
            Ok(router) => {
                let version = router.artifact.version().to_string();
                *current = Ok(router);
                Ok(version)
            }
            Err(e) => {
                if current.is_err() {
                    *current = Err(Unavailable::Load(e.clone()));
                }
                Err(e)
            }
        }
    }
}
