//! What a request reads, built from one config: the planner, providers, admission, cooldowns and
//! the sinks. A config reload builds a new [`AppState`] and swaps it into [`Reloadable`]; requests in
//! flight keep the one they started with.

use super::admission::Admission;
use crate::config::Config;
use crate::live::LiveStats;
use crate::observe::analytics::Analytics;
use crate::observe::feedback::FeedbackStore;
use crate::observe::judge::JudgeQueue;
use crate::observe::logstore::LogStore;
use crate::observe::metrics::Metrics;
use crate::observe::record::Sinks;
use crate::route::learned::AutoSlot;
use crate::route::plan::Planner;
use crate::route::RoutingTable;
use crate::store::Store;
use crate::upstream::cooldown::Cooldowns;
use crate::upstream::failover::Guards;
use crate::upstream::{self, redact::Secrets, Provider};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Everything a request handler needs, built from one config.
pub struct AppState {
    pub config: Arc<Config>,
    pub planner: Planner,
    pub providers: HashMap<String, Arc<dyn Provider>>,
    /// Carried across reloads: counters, the log writer, the feedback index.
    pub metrics: Arc<Metrics>,
    pub logs: Arc<LogStore>,
    pub feedback: Arc<FeedbackStore>,
    /// The analytics table over the log (carried across reloads).
    pub analytics: Arc<Analytics>,
    /// Live per-model latency and error estimates (carried across reloads).
    pub live: Arc<LiveStats>,
    /// PostgreSQL and Redis shared with the other replicas (`[store]`; connected at start and
    /// carried across reloads).
    pub store: Option<Arc<Store>>,
    /// Answers waiting for the judge (carried across reloads; its size is read at start).
    pub judge: Arc<JudgeQueue>,
    /// Bounds the requests in flight (carried across reloads while its limits stay the same).
    pub admission: Arc<Admission>,
    /// Models skipped after repeated failures (carried while its settings stay the same).
    pub cooldowns: Arc<Cooldowns>,
}

/// Why a state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the log dir {}: {source}", dir.display())]
    LogDir {
        dir: PathBuf,
        source: std::io::Error,
    },
}

impl AppState {
    /// Builds providers, routing and the log writer from a validated config; `previous` (on a
    /// reload) hands over what outlives a config.
    /// `store` is the connected `[store]` at start (a reload keeps the previous one).
    pub fn new(
        config: Config,
        previous: Option<&AppState>,
        store: Option<Arc<Store>>,
    ) -> Result<Arc<AppState>, StateError> {
        let store = previous.map_or(store, |p| p.store.clone());
        let live = previous.map_or_else(Arc::default, |p| p.live.clone());
        let (metrics, logs, feedback, analytics, judge) = match previous {
            Some(p) => (
                p.metrics.clone(),
                p.logs.clone(),
                p.feedback.clone(),
                p.analytics.clone(),
                p.judge.clone(),
            ),
            None => {
                let metrics = Arc::new(Metrics::default());
                let logs = LogStore::start(&config.logging, metrics.clone(), store.clone())
                    .map_err(|source| StateError::LogDir {
                        dir: config.logging.dir.clone(),
                        source,
                    })?;
                let feedback = FeedbackStore::open(
                    config
                        .logging
                        .enabled
                        .then_some(config.logging.dir.as_path()),
                    config.logging.feedback_window,
                );
                // With the shared store, analytics reads every replica's records from it.
                let shared = store.as_ref().is_some_and(|s| s.pg.is_some());
                let log_dir =
                    (config.logging.enabled && !shared).then_some(config.logging.dir.as_path());
                let analytics = Arc::new(Analytics::new(log_dir, config.logging.analytics_rows));
                // Index the log already on disk in the background, so the first query is quick.
                let warm = analytics.clone();
                std::thread::spawn(move || {
                    if let Err(e) = warm.read(|_| ()) {
                        tracing::warn!("analytics could not read the log: {e}");
                    }
                });
                let judge = JudgeQueue::new(config.judge.as_ref().map_or(1, |j| j.max_queue));
                (
                    metrics,
                    Arc::new(logs),
                    Arc::new(feedback),
                    analytics,
                    Arc::new(judge),
                )
            }
        };
        let http = upstream::client::http_client();
        let secrets = Secrets::of(&config);
        let providers = config
            .providers
            .iter()
            .map(|(name, p)| (name.clone(), upstream::build(p, &http, &secrets)))
            .collect();
        let auto = AutoSlot::load(config.auto.as_ref(), &live);
        match &auto.get() {
            Ok(a) => {
                tracing::info!(artifact = %a.artifact_dir.display(), version = a.artifact.version(), "learned routing ready")
            }
            Err(e) => tracing::warn!("model \"auto\" is unavailable: {e}"),
        }
        // Artifacts pinned by a route or variant: loaded once each with the [auto] settings.
        let pinned = match &config.auto {
            None => Default::default(),
            Some(a) => crate::config::pinned_artifacts(&config.routers)
                .into_iter()
                .map(|path| {
                    let slot = AutoSlot::load(
                        Some(&crate::config::AutoConfig {
                            artifact: path.clone(),
                            ..a.clone()
                        }),
                        &live,
                    );
                    if let Err(e) = slot.get() {
                        tracing::warn!(artifact = %path.display(), "a pinned artifact is unavailable: {e}");
                    }
                    (path, slot)
                })
                .collect(),
        };
        let decision_slots = config
            .auto
            .as_ref()
            .map(|a| a.encoder_sessions)
            .unwrap_or(1);
        let server = &config.server;
        let admission = match previous {
            Some(p) if Admission::same_settings(&p.config.server, server) => p.admission.clone(),
            _ => Arc::new(Admission::new(
                server.max_in_flight,
                server.max_in_flight_per_key,
                server.api_keys.len(),
                server.max_body_memory,
            )),
        };
        let cooldowns = match previous {
            Some(p) if Cooldowns::same_settings(&p.config.server, server) => p.cooldowns.clone(),
            _ => Arc::new(Cooldowns::new(server.cooldown_failures, server.cooldown)),
        };
        Ok(Arc::new(AppState {
            cooldowns,
            admission,
            feedback,
            analytics,
            judge,
            planner: Planner::new(
                RoutingTable::new(&config),
                auto,
                pinned,
                decision_slots,
                live.clone(),
            ),
            live,
            store,
            config: Arc::new(config),
            providers,
            metrics,
            logs,
        }))
    }

    /// Where finished requests are recorded.
    /// What bounds one request's attempts: cooldowns, the total deadline, the answer size.
    pub fn guards(&self) -> Guards<'_> {
        Guards {
            cooldowns: &self.cooldowns,
            metrics: &self.metrics,
            deadline: self.config.server.deadline,
            max_upstream_body_bytes: self.config.server.max_upstream_body_bytes,
            failover: &self.config.server.failover,
            live: &self.live,
        }
    }

    pub fn sinks(&self) -> Sinks<'_> {
        Sinks {
            metrics: &self.metrics,
            logs: &self.logs,
            feedback: &self.feedback,
            live: &self.live,
            store: self.store.as_ref(),
            logging: &self.config.logging,
            judge: &self.judge,
            judge_config: self.config.judge.as_ref(),
        }
    }
}

/// The state requests start with: swapped whole by a config reload.
pub struct Reloadable {
    current: RwLock<Arc<AppState>>,
    /// The config file, when the config came from one (reloads read it again).
    config_path: Option<PathBuf>,
}

impl Reloadable {
    pub fn new(state: Arc<AppState>, config_path: Option<PathBuf>) -> Reloadable {
        Reloadable {
            current: RwLock::new(state),
            config_path,
        }
    }

    /// The current state (a request keeps it to the end).
    pub fn get(&self) -> Arc<AppState> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the state for requests that start from now on.
    pub fn set(&self, state: Arc<AppState>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// The config file, when the config came from one.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }
}
