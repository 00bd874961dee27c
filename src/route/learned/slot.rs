//! The live learned router. A reload swaps it atomically: requests keep the `Arc` they started
//! with, and a broken artifact is refused while the old router stays.

use super::AutoRouter;
use crate::config::AutoConfig;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;
use switchyard_learn::artifact::artifact_dir;

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

/// The live learned router. A reload swaps it atomically: requests keep the `Arc` they started
/// with, and a broken artifact is refused while the old router stays.
pub struct AutoSlot {
    current: RwLock<Result<Arc<AutoRouter>, String>>,
    seen: Mutex<Option<Signature>>,
}

impl AutoSlot {
    /// Loads the configured router, or records why `auto` is unavailable.
    pub fn load(cfg: Option<&AutoConfig>) -> AutoSlot {
        let (current, seen) = match cfg {
            None => (
                Err(
                    "learned routing is not configured (no [auto] section in the config)"
                        .to_string(),
                ),
                None,
            ),
            Some(c) => (
                AutoRouter::load(c).map(Arc::new).map_err(|e| e.to_string()),
                signature(c),
            ),
        };
        AutoSlot {
            current: RwLock::new(current),
            seen: Mutex::new(seen),
        }
    }

    /// The router requests should use now, or why there is none.
    pub fn get(&self) -> Result<Arc<AutoRouter>, String> {
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
    pub fn reload(&self, cfg: &AutoConfig) -> Result<String, String> {
        let loaded = AutoRouter::load(cfg)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        match loaded {
            Ok(router) => {
                let version = router.artifact.version().to_string();
                *current = Ok(router);
                Ok(version)
            }
            Err(e) => {
                if current.is_err() {
                    *current = Err(e.clone());
                }
                Err(e)
            }
        }
    }
}
