//! The HTTP service: routes, request handling, authentication, and graceful shutdown.

use crate::admission::{Admission, Ticket};
use crate::auto::{AutoRouter, AutoSlot};
use crate::config::{Config, RouteAuto};
use crate::cooldown::Cooldowns;
use crate::error::{ErrorKind, GatewayError};
use crate::feedback::FeedbackStore;
use crate::gateway::{self, Execution, Served};
use crate::logstore::LogStore;
use crate::metrics::Metrics;
use crate::providers::{self, Provider};
use crate::relay::{self, ClientFormat, CommittedStream, RequestContext};
use crate::request::ChatRequest;
use crate::routing::{RoutePlan, RoutingTable};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Everything a request handler needs, built from one config. A config reload builds a new
/// one; requests in flight keep the one they started with.
pub struct AppState {
    pub config: Arc<Config>,
    pub routing: RoutingTable,
    pub providers: HashMap<String, Arc<dyn Provider>>,
    /// Carried across reloads: counters, the log writer, the feedback index.
    pub metrics: Arc<Metrics>,
    pub logs: Arc<LogStore>,
    pub feedback: Arc<FeedbackStore>,
    /// Learned routing (hot-reloadable), or why `auto` is unavailable.
    pub auto: AutoSlot,
    /// Bounds concurrent routing decisions (each holds an encoder session).
    auto_permits: tokio::sync::Semaphore,
    /// Bounds the requests in flight (carried across reloads while its limits stay the same).
    pub admission: Arc<Admission>,
    /// Models skipped after repeated failures (carried while its settings stay the same).
    pub cooldowns: Arc<Cooldowns>,
}

impl AppState {
    /// Builds providers, routing and the log writer from a validated config; `previous` (on a
    /// reload) hands over what outlives a config.
    pub fn new(config: Config, previous: Option<&AppState>) -> Result<Arc<AppState>, String> {
        let (metrics, logs, feedback) = match previous {
            Some(p) => (p.metrics.clone(), p.logs.clone(), p.feedback.clone()),
            None => {
                let metrics = Arc::new(Metrics::default());
                let logs = LogStore::start(&config.logging, metrics.clone()).map_err(|e| {
                    format!(
                        "cannot open the log dir {}: {e}",
                        config.logging.dir.display()
                    )
                })?;
                let feedback = FeedbackStore::open(
                    config
                        .logging
                        .enabled
                        .then_some(config.logging.dir.as_path()),
                    config.logging.feedback_window,
                );
                (metrics, Arc::new(logs), Arc::new(feedback))
            }
        };
        let http = providers::http_client();
        let secrets = providers::redact::Secrets::of(&config);
        let providers = config
            .providers
            .iter()
            .map(|(name, p)| (name.clone(), providers::build(p, &http, &secrets)))
            .collect();
        let auto = AutoSlot::load(config.auto.as_ref());
        match &auto.get() {
            Ok(a) => {
                tracing::info!(artifact = %a.artifact_dir.display(), version = a.artifact.version(), "learned routing ready")
            }
            Err(e) => tracing::warn!("model \"auto\" is unavailable: {e}"),
        }
        let auto_permits = tokio::sync::Semaphore::new(
            config
                .auto
                .as_ref()
                .map(|a| a.encoder_sessions)
                .unwrap_or(1),
        );
        let server = &config.server;
        let admission = match previous {
            Some(p)
                if (
                    p.config.server.max_in_flight,
                    p.config.server.max_in_flight_per_key,
                    &p.config.server.api_keys,
                    p.config.server.max_body_memory,
                ) == (
                    server.max_in_flight,
                    server.max_in_flight_per_key,
                    &server.api_keys,
                    server.max_body_memory,
                ) =>
            {
                p.admission.clone()
            }
            _ => Arc::new(Admission::new(
                server.max_in_flight,
                server.max_in_flight_per_key,
                server.api_keys.len(),
                server.max_body_memory,
            )),
        };
        let cooldowns = match previous {
            Some(p)
                if (p.config.server.cooldown_failures, p.config.server.cooldown)
                    == (server.cooldown_failures, server.cooldown) =>
            {
                p.cooldowns.clone()
            }
            _ => Arc::new(Cooldowns::new(server.cooldown_failures, server.cooldown)),
        };
        Ok(Arc::new(AppState {
            cooldowns,
            admission,
            auto,
            auto_permits,
            feedback,
            routing: RoutingTable::new(&config),
            config: Arc::new(config),
            providers,
            metrics,
            logs,
        }))
    }
}

/// The state requests start with: swapped whole by a config reload.
pub struct Live {
    current: std::sync::RwLock<Arc<AppState>>,
    /// The config file, when the config came from one (reloads read it again).
    config_path: Option<PathBuf>,
}

impl Live {
    /// The current state (a request keeps it to the end).
    pub fn get(&self) -> Arc<AppState> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, state: Arc<AppState>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = state;
    }
}

/// The axum router with every endpoint.
pub fn router(live: Arc<Live>) -> axum::Router {
    axum::Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(list_models))
        .route("/v1/feedback", post(feedback))
        .route("/v1/route", post(route))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(live)
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub live: Arc<Live>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    reloader: JoinHandle<()>,
}

/// How often the artifact and (with `server.watch_config`) the config file are checked.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Reloads on SIGHUP — the whole config when it came from a file, else the learned router —
/// and when the watched config file or artifact changes.
async fn reloader(live: Arc<Live>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut config_seen = live.config_path.as_deref().and_then(file_signature);
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
        if let Some(path) = &live.config_path {
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
        if !(signalled || (cfg.watch && state.auto.changed(cfg))) {
            continue;
        }
        let s = state.clone();
        let result = tokio::task::spawn_blocking(move || {
            let cfg = s.config.auto.as_ref().expect("checked above");
            s.auto.reload(cfg)
        })
        .await;
        match result {
            Ok(Ok(version)) => {
                state
                    .metrics
                    .auto_reloads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(version, signalled, "learned router reloaded")
            }
            Ok(Err(e)) => {
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
async fn reload_config(live: &Arc<Live>, path: &Path) {
    use std::sync::atomic::Ordering::Relaxed;
    let old = live.get();
    let (path, previous) = (path.to_path_buf(), old.clone());
    let built = tokio::task::spawn_blocking(move || {
        let config = Config::load(&path).map_err(|e| e.to_string())?;
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
        AppState::new(config, Some(&previous))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the reload panicked: {e}")));
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

impl Server {
    /// Binds `listen` (use port 0 for any free port) and starts serving.
    pub async fn start(config: Config, listen: &str) -> Result<Server, String> {
        Server::start_from(config, listen, None).await
    }

    /// Like [`Server::start`]; `config_path` is the file the config came from, read again on
    /// SIGHUP (and, with `server.watch_config`, when it changes).
    pub async fn start_from(
        config: Config,
        listen: &str,
        config_path: Option<PathBuf>,
    ) -> Result<Server, String> {
        let state = AppState::new(config, None)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (read_timeout, grace) = (
            state.config.server.read_timeout,
            state.config.server.shutdown_grace,
        );
        let live = Arc::new(Live {
            current: std::sync::RwLock::new(state),
            config_path,
        });
        let app = router(live.clone());
        let reloader = tokio::spawn(reloader(live.clone()));
        let task = tokio::spawn(async move {
            crate::accept::serve(listener, app, read_timeout, grace, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Server {
            addr,
            live,
            stop: Some(stop),
            task,
            reloader,
        })
    }

    /// Stops accepting connections, lets in-flight requests (streams included) finish, then
    /// writes every queued log record.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.reloader.abort();
        if let Err(e) = (&mut self.task).await {
            tracing::error!(error = %e, "server task failed");
        }
        self.live.get().logs.shutdown().await;
    }
}

async fn chat_completions(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let state = live.get();
    handle(state, ClientFormat::OpenAi, headers, body).await
}

async fn messages(State(live): State<Arc<Live>>, headers: HeaderMap, body: Body) -> Response {
    let state = live.get();
    handle(state, ClientFormat::Anthropic, headers, body).await
}

async fn handle(
    state: Arc<AppState>,
    format: ClientFormat,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let started_unix_ms = crate::util::unix_millis();
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let (req, plan, ticket) = match prepare(&state, format, &headers, body, &request_id).await {
        Ok(x) => x,
        Err(e) => {
            relay::log_rejected(&state, &request_id, format, started, &e);
            return relay::error_response(format, &e, &request_id);
        }
    };
    let ctx = RequestContext {
        request_id,
        format,
        started,
        started_unix_ms,
        req,
        plan,
        _ticket: ticket,
    };
    let guards = gateway::Guards {
        cooldowns: &state.cooldowns,
        metrics: &state.metrics,
        deadline: state.config.server.deadline,
        max_upstream_body_bytes: state.config.server.max_upstream_body_bytes,
    };
    let Execution { attempts, result } =
        gateway::execute(&state.providers, &ctx.plan, &ctx.req, &guards).await;
    match result {
        Ok((model, Served::Complete(v))) => {
            relay::complete_response(&state, &ctx, &attempts, &model, v)
        }
        Ok((
            model,
            Served::Stream {
                peeked,
                rest,
                attempt_started,
                deadline,
            },
        )) => relay::stream_response(
            state.clone(),
            ctx,
            CommittedStream {
                model,
                attempts,
                peeked,
                rest,
                attempt_started,
                deadline,
            },
        ),
        Err(e) => relay::failed_response(&state, &ctx, &attempts, &e),
    }
}

/// Authenticates, admits, reads, parses and plans a request.
async fn prepare(
    state: &AppState,
    format: ClientFormat,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
) -> Result<(ChatRequest, RoutePlan, Ticket), GatewayError> {
    let key = authorize(state, headers)?;
    let mut ticket = match state.admission.admit(key, &state.metrics) {
        Ok(t) => t,
        Err(e) => {
            discard(body, state).await;
            return Err(e);
        }
    };
    let value = read_json(state, headers, body, &mut ticket).await?;
    let value = match format {
        ClientFormat::OpenAi => value,
        ClientFormat::Anthropic => crate::anthropic::request::to_openai(value)?,
    };
    let req = ChatRequest::from_openai(value)?;
    let plan = match req.model.as_deref() {
        Some(m) if m == "auto" || m.starts_with("auto:") => {
            auto_plan(state, &req, m, request_id).await?
        }
        _ => complete_route_plan(state, &req, state.routing.plan(&req, request_id)?).await?,
    };
    Ok((req, plan, ticket))
}

/// The knob for a learned decision: `router.cost_weight` / `metadata.cost_weight` (0–1), or
/// `router.strong_share` / `metadata.strong_share` (0–1, the share of prompts the strongest
/// candidate should get, through the artifact's validation calibration), else the model suffix
/// (`auto:cheap`, `auto:balanced`, `auto:best`, `auto:<0..1>`), else `default` (the `[auto]`
/// default knob, or a router route's `knob`).
fn knob(
    router: &AutoRouter,
    req: &ChatRequest,
    suffix: Option<&str>,
    default: (String, f64),
) -> Result<(String, f64), GatewayError> {
    let option = |name: &str| {
        req.router_options
            .get(name)
            .map(|v| (format!("router.{name}"), v))
            .or_else(|| {
                req.metadata
                    .get(name)
                    .map(|v| (format!("metadata.{name}"), v))
            })
    };
    let unit = |param: &str, v: &Value| {
        v.as_f64()
            .filter(|w| (0.0..=1.0).contains(w))
            .ok_or_else(|| {
                GatewayError::invalid(format!("`{param}` must be a number between 0 and 1"), param)
            })
    };
    if let Some((param, v)) = option("cost_weight") {
        let w = unit(&param, v)?;
        return Ok((format!("cost_weight={w}"), w));
    }
    if let Some((param, v)) = option("strong_share") {
        let share = unit(&param, v)?;
        let table = router.calibration.as_deref().ok_or_else(|| {
            GatewayError::invalid(
                format!("`{param}` needs an artifact with a strong-share calibration; retrain with `switchyard train`"),
                &param,
            )
        })?;
        return Ok((
            format!("strong_share={share}"),
            crate::auto::cost_weight_for_share(table, share),
        ));
    }
    match suffix {
        None => Ok(default),
        Some(k) => crate::config::cost_weight(k).map(|w| (k.to_string(), w)).ok_or_else(|| {
            GatewayError::invalid(format!("unknown knob \"auto:{k}\": use auto:best, auto:balanced, auto:cheap or auto:<0..1>"), "model")
        }),
    }
}

/// Where a learned decision comes from: `model: "auto[:knob]"`, or a router route whose
/// target is `auto`.
enum AutoSource<'a> {
    Model(&'a str),
    Route(&'a RouteAuto),
}

/// The learned decision on a bounded blocking pool: the ranked eligible candidates.
async fn learned_chain(
    state: &AppState,
    req: &ChatRequest,
    source: AutoSource<'_>,
) -> Result<
    (
        Vec<Arc<crate::config::ModelConfig>>,
        crate::auto::LearnedDecision,
    ),
    GatewayError,
> {
    let router = state.auto.get().map_err(|why| {
        GatewayError::new(
            ErrorKind::AutoUnavailable,
            format!("model \"auto\" (learned routing) is unavailable: {why}"),
        )
        .with_param("model")
    })?;
    let (label, weight, only) = match source {
        AutoSource::Model(model) => {
            let default = ("default".to_string(), router.default_cost_weight);
            let (l, w) = knob(&router, req, model.strip_prefix("auto:"), default)?;
            (l, w, Vec::new())
        }
        AutoSource::Route(ra) => {
            let (l, w) = knob(&router, req, None, (ra.knob.clone(), ra.cost_weight))?;
            (l, w, ra.candidates.clone())
        }
    };
    let _permit = state
        .auto_permits
        .acquire()
        .await
        .map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()))?;
    let owned = req.clone();
    tokio::task::spawn_blocking(move || router.decide(&owned, &label, weight, &only))
        .await
        .map_err(|e| {
            GatewayError::new(ErrorKind::Internal, format!("routing decision failed: {e}"))
        })?
}

/// Plans an `auto` request: the learned chain, then the request's `models`.
async fn auto_plan(
    state: &AppState,
    req: &ChatRequest,
    model: &str,
    request_id: &str,
) -> Result<RoutePlan, GatewayError> {
    let (mut chain, learned) = learned_chain(state, req, AutoSource::Model(model)).await?;
    crate::routing::append_unique(&mut chain, state.routing.resolve_models(req, request_id)?);
    let (timeout, ttft_timeout) = state.routing.timeouts();
    Ok(RoutePlan {
        decision: crate::routing::Decision {
            router: Some("auto".into()),
            route: None,
            variant: None,
            reason: format!(
                "learned routing: {} has the best predicted quality-cost score (knob {}, cost weight {})",
                learned.chosen, learned.knob, learned.cost_weight
            ),
            learned: Some(learned),
        },
        chain,
        auto: None,
        timeout,
        ttft_timeout,
    })
}

/// Completes a router plan whose route targets `auto`: the learned chain before the route's
/// fallbacks.
async fn complete_route_plan(
    state: &AppState,
    req: &ChatRequest,
    mut plan: RoutePlan,
) -> Result<RoutePlan, GatewayError> {
    let Some(ra) = plan.auto.take() else {
        return Ok(plan);
    };
    let (mut chain, learned) = learned_chain(state, req, AutoSource::Route(&ra)).await?;
    crate::routing::append_unique(&mut chain, plan.chain.drain(..));
    plan.chain = chain;
    plan.decision.reason.push_str(&format!(
        "; learned routing chose {} (knob {}, cost weight {})",
        learned.chosen, learned.knob, learned.cost_weight
    ));
    plan.decision.learned = Some(learned);
    Ok(plan)
}

/// `POST /v1/route`: the routing decision for a chat body; nothing is sent upstream.
async fn route(State(live): State<Arc<Live>>, headers: HeaderMap, body: Body) -> Response {
    let state = live.get();
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    match prepare(&state, ClientFormat::OpenAi, &headers, body, &request_id).await {
        Ok((req, plan, _ticket)) => Json(json!({
            "object": "route", "request_id": request_id, "model": plan.chain.first().map(|m| m.id.clone()),
            "chain": plan.chain.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
            "prompt_tokens": req.prompt_tokens, "routing": plan.decision,
        }))
        .into_response(),
        Err(e) => relay::error_response(ClientFormat::OpenAi, &e, &request_id),
    }
}

/// Reads a JSON body within `server.max_body_bytes`.
async fn read_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    ticket: &mut Ticket,
) -> Result<Value, GatewayError> {
    let limit = state.config.server.max_body_bytes;
    let too_large = || {
        GatewayError::new(
            ErrorKind::BodyTooLarge,
            format!("the request body is larger than the limit of {limit} bytes (server.max_body_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    if let Err(e) = state
        .admission
        .admit_body(ticket, declared.unwrap_or(limit), &state.metrics)
    {
        discard(body, state).await;
        return Err(e);
    }
    let read = state.config.server.read_timeout;
    let bytes = tokio::time::timeout(read, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            GatewayError::new(
                ErrorKind::RequestTimeout,
                format!(
                    "the request body did not arrive within {} ms (server.read_timeout)",
                    read.as_millis()
                ),
            )
        })?
        .map_err(|e| {
            if is_length_limit(&e) {
                too_large()
            } else {
                GatewayError::new(
                    ErrorKind::InvalidRequest,
                    format!("could not read the request body: {e}"),
                )
            }
        })?;
    let max_values = state.config.server.max_json_values;
    if crate::request::json_values_exceed(&bytes, max_values) {
        return Err(GatewayError::new(
            ErrorKind::BodyTooLarge,
            format!("the request body holds more than {max_values} JSON values (server.max_json_values)"),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidJson,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })
}

/// `POST /v1/feedback`: a score or thumbs for a served request, stored before the reply.
async fn feedback(State(live): State<Arc<Live>>, headers: HeaderMap, body: Body) -> Response {
    let state = live.get();
    let result = async {
        authorize(&state, &headers)?;
        let mut ticket = state.admission.admit(None, &state.metrics)?;
        let value = read_json(&state, &headers, body, &mut ticket).await?;
        let f = state.feedback.validate(&value)?;
        let store = state.clone();
        let f2 = f.clone();
        let replaced = tokio::task::spawn_blocking(move || store.feedback.store(&f2))
            .await
            .map_err(|e| {
                GatewayError::new(ErrorKind::Internal, format!("feedback writer failed: {e}"))
            })??;
        Ok::<_, GatewayError>(json!({
            "object": "feedback", "request_id": f.request_id, "source": f.source, "score": f.score,
            "thumbs": f.thumbs, "model": f.model, "replaced": replaced,
        }))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => relay::error_response(ClientFormat::OpenAi, &e, ""),
    }
}

/// Reads a shed request's body into nothing (within the body limit and read timeout), so the
/// client gets its 503/429 instead of a connection reset; it holds no memory.
async fn discard(body: Body, state: &AppState) {
    use http_body_util::BodyExt;
    let mut body = body;
    let (mut left, deadline) = (
        state.config.server.max_body_bytes,
        tokio::time::Instant::now() + state.config.server.read_timeout,
    );
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        let n = frame.data_ref().map_or(0, |d| d.len());
        match left.checked_sub(n) {
            Some(l) => left = l,
            None => return,
        }
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Checks `Authorization: Bearer <key>` or `x-api-key` when router keys are configured;
/// `Some(index of the key)` when one matched.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Option<usize>, GatewayError> {
    let keys = &state.config.server.api_keys;
    if keys.is_empty() {
        return Ok(None);
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let given = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match given {
        None => Err(GatewayError::new(
            ErrorKind::Unauthorized,
            "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
        )),
        Some(k) => keys
            .iter()
            .position(|key| constant_time_eq(key.as_bytes(), k.trim().as_bytes()))
            .map(Some)
            .ok_or_else(|| {
                GatewayError::new(ErrorKind::Unauthorized, "incorrect API key provided")
            }),
    }
}

/// Compares two secrets in time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn list_models(State(live): State<Arc<Live>>, headers: HeaderMap) -> Response {
    let state = live.get();
    if let Err(e) = authorize(&state, &headers) {
        return relay::error_response(ClientFormat::OpenAi, &e, "");
    }
    let mut data: Vec<Value> = state
        .routing
        .models
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "object": "model", "created": 0, "owned_by": m.provider, "type": "model",
                "upstream": m.upstream, "input_price_per_mtok": m.input_price_per_mtok,
                "output_price_per_mtok": m.output_price_per_mtok, "context_window": m.context_window,
                "max_output_tokens": m.max_output_tokens, "tags": m.tags,
                "cooldown": state.cooldowns.describe(&m.id),
            })
        })
        .collect();
    for r in &state.routing.routers {
        data.push(json!({
            "id": format!("router/{}", r.name), "object": "model", "created": 0, "owned_by": "switchyard",
            "type": "router", "routes": r.routes.iter().map(|x| &x.name).chain([&r.default.name]).collect::<Vec<_>>(),
        }));
    }
    data.push(match &state.auto.get() {
        Ok(a) => json!({
            "id": "auto", "object": "model", "created": 0, "owned_by": "switchyard", "type": "auto", "available": true,
            "artifact_version": a.artifact.version(), "encoder": a.encoder.id(),
            "candidates": a.artifact.weights.candidates.iter().map(|c| c.model.clone()).collect::<Vec<_>>(),
            "knobs": ["auto:best", "auto:balanced", "auto:cheap"], "strong_share_calibrated": a.calibration.is_some(),
        }),
        Err(why) => json!({
            "id": "auto", "object": "model", "created": 0, "owned_by": "switchyard", "type": "auto",
            "available": false, "reason": why,
        }),
    });
    Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /metrics`: needs the router key when keys are configured, unless
/// `server.metrics_public = true` (for a scraper that cannot send one).
async fn metrics(State(live): State<Arc<Live>>, headers: HeaderMap) -> Response {
    let state = live.get();
    if !state.config.server.metrics_public {
        if let Err(e) = authorize(&state, &headers) {
            return relay::error_response(ClientFormat::OpenAi, &e, "");
        }
    }
    let mut text = state.metrics.render();
    if let Ok(a) = &state.auto.get() {
        use std::sync::atomic::Ordering::Relaxed;
        text.push_str(&format!(
            "# HELP switchyard_embedding_cache_total Prompt-embedding cache lookups of learned routing.\n# TYPE switchyard_embedding_cache_total counter\nswitchyard_embedding_cache_total{{result=\"hit\"}} {}\nswitchyard_embedding_cache_total{{result=\"miss\"}} {}\n",
            a.cache_hits.load(Relaxed),
            a.cache_misses.load(Relaxed)
        ));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// 405 with a body in the endpoint's wire shape and the methods it takes in `Allow`.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let allow = match uri.path() {
        "/v1/models" | "/healthz" | "/metrics" => "GET",
        _ => "POST",
    };
    let e = GatewayError::new(
        ErrorKind::MethodNotAllowed,
        format!("{} does not accept {method}; use {allow}", uri.path()),
    );
    let body = if uri.path() == "/v1/messages" {
        e.anthropic_body()
    } else {
        e.openai_body()
    };
    let mut resp = (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    resp
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let e = GatewayError::new(ErrorKind::NotFound, format!("no route for {}", uri.path()));
    (StatusCode::NOT_FOUND, Json(e.openai_body())).into_response()
}
