//! The HTTP service: routes, request handling, authentication, and graceful shutdown.

use crate::config::Config;
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
use axum::serve::ListenerExt;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Everything a request handler needs, shared by all requests.
pub struct AppState {
    pub config: Arc<Config>,
    pub routing: RoutingTable,
    pub providers: HashMap<String, Arc<dyn Provider>>,
    pub metrics: Arc<Metrics>,
    pub logs: LogStore,
    pub feedback: FeedbackStore,
}

impl AppState {
    /// Builds providers, routing and the log writer from a validated config.
    pub fn new(config: Config) -> Result<Arc<AppState>, String> {
        let metrics = Arc::new(Metrics::default());
        let logs = LogStore::start(&config.logging, metrics.clone()).map_err(|e| {
            format!(
                "cannot open the log dir {}: {e}",
                config.logging.dir.display()
            )
        })?;
        let http = providers::http_client();
        let providers = config
            .providers
            .iter()
            .map(|(name, p)| (name.clone(), providers::build(p, &http)))
            .collect();
        let feedback = FeedbackStore::open(
            config
                .logging
                .enabled
                .then_some(config.logging.dir.as_path()),
        );
        Ok(Arc::new(AppState {
            feedback,
            routing: RoutingTable::new(&config),
            config: Arc::new(config),
            providers,
            metrics,
            logs,
        }))
    }
}

/// The axum router with every endpoint.
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(list_models))
        .route("/v1/feedback", post(feedback))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `listen` (use port 0 for any free port) and starts serving.
    pub async fn start(config: Config, listen: &str) -> Result<Server, String> {
        let state = AppState::new(config)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener.tap_io(nodelay), app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Server {
            addr,
            state,
            stop: Some(stop),
            task,
        })
    }

    /// Stops accepting connections, lets in-flight requests (streams included) finish, then
    /// writes every queued log record.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Ok(Err(e)) = (&mut self.task).await {
            tracing::error!(error = %e, "server error");
        }
        self.state.logs.shutdown().await;
    }
}

/// Disables Nagle's algorithm on accepted connections: SSE chunks are small, and Nagle with
/// delayed ACKs would hold them for tens of milliseconds.
pub fn nodelay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, ClientFormat::OpenAi, headers, body).await
}

async fn messages(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
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
    let (req, plan) = match prepare(&state, format, &headers, body, &request_id).await {
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
    };
    let Execution { attempts, result } =
        gateway::execute(&state.providers, &ctx.plan, &ctx.req).await;
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

/// Authenticates, reads, parses and plans a request.
async fn prepare(
    state: &AppState,
    format: ClientFormat,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
) -> Result<(ChatRequest, RoutePlan), GatewayError> {
    authorize(state, headers)?;
    let value = read_json(state, headers, body).await?;
    let value = match format {
        ClientFormat::OpenAi => value,
        ClientFormat::Anthropic => crate::anthropic::request::to_openai(value)?,
    };
    let req = ChatRequest::from_openai(value)?;
    let plan = state.routing.plan(&req, request_id)?;
    Ok((req, plan))
}

/// Reads a JSON body within `server.max_body_bytes`.
async fn read_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
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
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            too_large()
        } else {
            GatewayError::new(
                ErrorKind::InvalidRequest,
                format!("could not read the request body: {e}"),
            )
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidJson,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })
}

/// `POST /v1/feedback`: a score or thumbs for a served request, stored before the reply.
async fn feedback(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let value = read_json(&state, &headers, body).await?;
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

/// Checks `Authorization: Bearer <key>` or `x-api-key` when router keys are configured.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), GatewayError> {
    let keys = &state.config.server.api_keys;
    if keys.is_empty() {
        return Ok(());
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
        Some(k) if keys.iter().any(|key| key == k.trim()) => Ok(()),
        Some(_) => Err(GatewayError::new(
            ErrorKind::Unauthorized,
            "incorrect API key provided",
        )),
    }
}

async fn list_models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
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
            })
        })
        .collect();
    for r in &state.routing.routers {
        data.push(json!({
            "id": format!("router/{}", r.name), "object": "model", "created": 0, "owned_by": "switchyard",
            "type": "router", "routes": r.routes.iter().map(|x| &x.name).chain([&r.default.name]).collect::<Vec<_>>(),
        }));
    }
    data.push(json!({
        "id": "auto", "object": "model", "created": 0, "owned_by": "switchyard", "type": "auto",
        "available": false, "reason": "no trained router artifact is configured",
    }));
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let e = GatewayError::new(ErrorKind::NotFound, format!("no route for {}", uri.path()));
    (StatusCode::NOT_FOUND, Json(e.openai_body())).into_response()
}
