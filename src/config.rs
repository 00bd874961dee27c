//! The TOML configuration: parsed into typed structs, validated once at load time into a
//! [`Config`] that the server uses without further checks.
//!
//! Every error names the file, the key and the reason.

use crate::mock_script::MockBehaviour;
use crate::routing::cel::CelExpr;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The configuration used when `--config` is not given: mock models that need no keys, and the
/// real OpenAI / Anthropic providers when their API keys are in the environment.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

/// A configuration error: where it is and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "config error in {} at `{}`: {}",
            self.file, self.key, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------------------------
// File shapes
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    logging: FileLogging,
    #[serde(default)]
    providers: BTreeMap<String, FileProvider>,
    #[serde(default)]
    models: Vec<FileModel>,
    #[serde(default)]
    routers: BTreeMap<String, FileRouter>,
    auto: Option<FileAuto>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuto {
    artifact: Option<String>,
    encoder: Option<String>,
    default_knob: Option<String>,
    #[serde(default)]
    candidates: BTreeMap<String, String>,
    #[serde(default)]
    guardrails: Vec<String>,
    cache_size: Option<usize>,
    encoder_sessions: Option<usize>,
    watch: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileServer {
    listen: Option<String>,
    max_body_bytes: Option<usize>,
    max_json_values: Option<usize>,
    max_body_memory: Option<usize>,
    max_upstream_body_bytes: Option<usize>,
    read_timeout: Option<String>,
    max_in_flight: Option<usize>,
    max_in_flight_per_key: Option<usize>,
    metrics_public: Option<bool>,
    deadline: Option<String>,
    cooldown_failures: Option<u32>,
    cooldown: Option<String>,
    shutdown_grace: Option<String>,
    watch_config: Option<bool>,
    timeout: Option<String>,
    ttft_timeout: Option<String>,
    #[serde(default)]
    api_keys: Vec<String>,
    api_keys_env: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLogging {
    dir: Option<String>,
    log_text: Option<bool>,
    buffer: Option<usize>,
    rotate_bytes: Option<u64>,
    max_text_bytes: Option<usize>,
    feedback_window: Option<usize>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProvider {
    kind: String,
    base_url: Option<String>,
    api_key_env: Option<String>,
    /// When true and the key's env var is unset, the provider and its models are left out.
    #[serde(default)]
    optional: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    id: String,
    upstream: Option<String>,
    #[serde(default)]
    input_price_per_mtok: f64,
    #[serde(default)]
    output_price_per_mtok: f64,
    context_window: Option<u64>,
    max_output_tokens: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
    mock: Option<MockBehaviour>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRouter {
    timeout: Option<String>,
    ttft_timeout: Option<String>,
    #[serde(default)]
    routes: Vec<FileRoute>,
    default: FileRoute,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    name: Option<String>,
    when: Option<String>,
    model: Option<String>,
    #[serde(default)]
    variants: Vec<FileVariant>,
    #[serde(default)]
    fallbacks: Vec<String>,
    /// Learned routing as this route's target: `auto = { candidates = [...], knob = "cheap" }`.
    auto: Option<FileRouteAuto>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRouteAuto {
    /// Served model ids among `[auto].candidates`; empty = all of them.
    #[serde(default)]
    candidates: Vec<String>,
    knob: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVariant {
    model: String,
    weight: u32,
    name: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Validated runtime shapes
// ---------------------------------------------------------------------------------------------

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    pub source: String,
    pub server: ServerConfig,
    pub logging: LoggingConfig,
    pub providers: BTreeMap<String, Arc<ProviderConfig>>,
    pub models: Vec<Arc<ModelConfig>>,
    pub routers: BTreeMap<String, Arc<RouterConfig>>,
    pub auto: Option<AutoConfig>,
}

/// Learned routing (`model: "auto"`): where the artifact and encoder are, which configured
/// model serves each of the artifact's candidates, and the guardrails.
#[derive(Debug)]
pub struct AutoConfig {
    /// A `router-<version>` directory, or a directory whose `LATEST` file names one.
    pub artifact: PathBuf,
    pub encoder: PathBuf,
    /// Cost weight used when the request does not set one (0 = best quality, 1 = cheapest).
    pub default_cost_weight: f64,
    /// (artifact candidate id, configured model that serves it)
    pub candidates: Vec<(String, Arc<ModelConfig>)>,
    pub guardrails: Vec<Arc<CelExpr>>,
    pub cache_size: usize,
    pub encoder_sessions: usize,
    /// Reload when the artifact on disk changes (checked every second); SIGHUP always reloads.
    pub watch: bool,
}

/// The cost weight of a knob: `best`, `balanced`, `cheap` or a number in [0, 1].
///
/// The presets are read off the default artifact's eval sweep on held-out test prompts
/// (`evals/reports/79088b64b841`, potion encoder): `best` (0) sends ~96 % of prompts to the
/// strong model and recovers all of the quality gap; `balanced` (0.1) ~57 % of prompts, ~76 % of
/// the gap at ~56 % of the strong model's cost; `cheap` (0.3) ~5 % of prompts, ~10 % of the gap.
/// (The MiniLM artifact `6f70e7860325` gives 92 / 61 / 9 % of prompts at the same weights.)
pub fn cost_weight(knob: &str) -> Option<f64> {
    match knob {
        "best" => Some(0.0),
        "balanced" => Some(0.1),
        "cheap" => Some(0.3),
        n => n.parse::<f64>().ok().filter(|w| (0.0..=1.0).contains(w)),
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub max_body_bytes: usize,
    /// Most JSON values (objects, arrays, strings, numbers, ...) a request body may hold: bounds
    /// the memory a parsed body takes, whatever its shape.
    pub max_json_values: usize,
    /// Bytes of request bodies (declared length, or `max_body_bytes`) held by requests in
    /// flight; beyond it new requests get 503 at once.
    pub max_body_memory: usize,
    /// The largest whole (non-streamed) answer read from an upstream; a larger one fails over.
    pub max_upstream_body_bytes: usize,
    /// Time a client has to send the request headers, and again the whole body.
    pub read_timeout: Duration,
    /// Requests in flight at once; more are answered 503 at once.
    pub max_in_flight: usize,
    /// Requests in flight at once per router key (0: no per-key bound); more get 429.
    pub max_in_flight_per_key: usize,
    /// `/metrics` without the router key even when keys are configured (default false).
    pub metrics_public: bool,
    /// Total time per request across its whole failover chain (default: none).
    pub deadline: Option<Duration>,
    /// Retryable failures in a row that put a model in cooldown (0: cooldowns off).
    pub cooldown_failures: u32,
    /// How long a model stays in cooldown before one request probes it.
    pub cooldown: Duration,
    /// At shutdown, how long in-flight requests and streams may take to finish.
    pub shutdown_grace: Duration,
    /// Reload the config when its file changes (checked every second); SIGHUP always reloads.
    pub watch_config: bool,
    pub timeout: Duration,
    pub ttft_timeout: Duration,
    pub api_keys: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct LoggingConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    pub log_text: bool,
    pub buffer: usize,
    pub rotate_bytes: u64,
    /// Prompt and answer text kept per log record; longer text is cut with a marker.
    pub max_text_bytes: usize,
    /// How many of the most recent served requests accept feedback.
    pub feedback_window: usize,
}

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Mock,
}

#[derive(Debug)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    /// The key itself, read from the environment at load time. Never logged.
    pub api_key: Option<String>,
}

/// One upstream model and what it costs.
#[derive(Debug)]
pub struct ModelConfig {
    /// `provider/model`
    pub id: String,
    pub provider: String,
    pub upstream: String,
    pub input_price_per_mtok: f64,
    pub output_price_per_mtok: f64,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub tags: Vec<String>,
    pub mock: MockBehaviour,
}

impl ModelConfig {
    /// Price of a call in USD.
    pub fn cost_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input_price_per_mtok
            + completion_tokens as f64 * self.output_price_per_mtok)
            / 1e6
    }
}

#[derive(Debug)]
pub struct RouterConfig {
    pub name: String,
    pub timeout: Duration,
    pub ttft_timeout: Duration,
    pub routes: Vec<RouteConfig>,
    pub default: RouteConfig,
}

#[derive(Debug)]
pub struct RouteConfig {
    pub name: String,
    pub when: Option<CelExpr>,
    /// Static targets; empty when the route's target is learned routing (`auto`).
    pub variants: Vec<VariantConfig>,
    pub fallbacks: Vec<Arc<ModelConfig>>,
    pub auto: Option<Arc<RouteAuto>>,
}

/// Learned routing as a route's target: a subset of the `[auto]` candidates and a default knob.
#[derive(Debug)]
pub struct RouteAuto {
    /// Served model ids; empty = every `[auto]` candidate.
    pub candidates: Vec<String>,
    pub knob: String,
    pub cost_weight: f64,
}

#[derive(Debug)]
pub struct VariantConfig {
    pub name: String,
    pub model: Arc<ModelConfig>,
    pub weight: u32,
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: "(file)".into(),
            reason: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&text, &file, &|k| std::env::var(k).ok())
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_CONFIG, "<embedded default config>", &|k| {
            std::env::var(k).ok()
        })
    }

    /// Parses and validates config text; `env` looks up environment variables.
    pub fn parse(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let err = |key: &str, reason: String| ConfigError {
            file: file.to_string(),
            key: key.to_string(),
            reason,
        };
        let raw: FileConfig = toml::from_str(text).map_err(|e| {
            let key = toml_error_key(text, &e);
            err(&key, e.message().to_string())
        })?;

        let server = ServerConfig {
            listen: raw.server.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
            max_body_bytes: raw.server.max_body_bytes.unwrap_or(4 * 1024 * 1024),
            max_json_values: raw.server.max_json_values.unwrap_or(50_000).max(1),
            max_upstream_body_bytes: raw
                .server
                .max_upstream_body_bytes
                .unwrap_or(32 * 1024 * 1024)
                .max(1),
            max_body_memory: raw
                .server
                .max_body_memory
                .unwrap_or(256 * 1024 * 1024)
                .max(1024),
            read_timeout: parse_opt_duration(
                &raw.server.read_timeout,
                "server.read_timeout",
                &err,
            )?
            .unwrap_or(Duration::from_secs(30)),
            max_in_flight: raw.server.max_in_flight.unwrap_or(1024).max(1),
            max_in_flight_per_key: raw.server.max_in_flight_per_key.unwrap_or(0),
            metrics_public: raw.server.metrics_public.unwrap_or(false),
            deadline: parse_opt_duration(&raw.server.deadline, "server.deadline", &err)?,
            cooldown_failures: raw.server.cooldown_failures.unwrap_or(5),
            cooldown: parse_opt_duration(&raw.server.cooldown, "server.cooldown", &err)?
                .unwrap_or(Duration::from_secs(30)),
            shutdown_grace: parse_opt_duration(
                &raw.server.shutdown_grace,
                "server.shutdown_grace",
                &err,
            )?
            .unwrap_or(Duration::from_secs(30)),
            watch_config: raw.server.watch_config.unwrap_or(false),
            timeout: parse_opt_duration(&raw.server.timeout, "server.timeout", &err)?
                .unwrap_or(Duration::from_secs(120)),
            ttft_timeout: parse_opt_duration(
                &raw.server.ttft_timeout,
                "server.ttft_timeout",
                &err,
            )?
            .unwrap_or(Duration::from_secs(30)),
            api_keys: {
                let mut keys = raw.server.api_keys.clone();
                if let Some(var) = &raw.server.api_keys_env {
                    match env(var) {
                        Some(v) => keys.extend(
                            v.split(',')
                                .map(|s| s.trim().to_string())
                                .filter(|s| !s.is_empty()),
                        ),
                        None => {
                            return Err(err(
                                "server.api_keys_env",
                                format!("environment variable {var} is not set"),
                            ))
                        }
                    }
                }
                keys
            },
        };
        if server.max_body_memory < server.max_body_bytes {
            return Err(err(
                "server.max_body_memory",
                format!(
                    "{} is smaller than server.max_body_bytes ({}): no body of the largest allowed size could ever be admitted",
                    server.max_body_memory, server.max_body_bytes
                ),
            ));
        }
        let logging = LoggingConfig {
            enabled: raw.logging.enabled.unwrap_or(true),
            dir: PathBuf::from(raw.logging.dir.unwrap_or_else(|| "logs".into())),
            log_text: raw.logging.log_text.unwrap_or(true),
            buffer: raw.logging.buffer.unwrap_or(16_384).max(1),
            rotate_bytes: raw.logging.rotate_bytes.unwrap_or(64 * 1024 * 1024),
            max_text_bytes: raw.logging.max_text_bytes.unwrap_or(64 * 1024),
            feedback_window: raw
                .logging
                .feedback_window
                .unwrap_or(crate::feedback::DEFAULT_WINDOW)
                .max(1),
        };

        // Providers: an optional provider whose key is missing is left out with its models.
        let mut providers = BTreeMap::new();
        let mut skipped = HashSet::new();
        for (name, p) in &raw.providers {
            let key = format!("providers.{name}");
            let kind = match p.kind.as_str() {
                "openai" => ProviderKind::OpenAi,
                "anthropic" => ProviderKind::Anthropic,
                "mock" => ProviderKind::Mock,
                other => {
                    return Err(err(
                        &format!("{key}.kind"),
                        format!("unknown provider kind {other:?}; expected \"openai\", \"anthropic\" or \"mock\""),
                    ))
                }
            };
            let base_url = match (&p.base_url, kind) {
                (Some(u), _) => u.trim_end_matches('/').to_string(),
                (None, ProviderKind::OpenAi) => "https://api.openai.com/v1".into(),
                (None, ProviderKind::Anthropic) => "https://api.anthropic.com/v1".into(),
                (None, ProviderKind::Mock) => String::new(),
            };
            if kind != ProviderKind::Mock
                && !(base_url.starts_with("http://") || base_url.starts_with("https://"))
            {
                return Err(err(
                    &format!("{key}.base_url"),
                    format!("{base_url:?} is not an http:// or https:// URL"),
                ));
            }
            let api_key = match &p.api_key_env {
                Some(var) => match env(var).filter(|v| !v.is_empty()) {
                    Some(v) => Some(v),
                    None if p.optional => {
                        skipped.insert(name.clone());
                        continue;
                    }
                    None => {
                        return Err(err(
                            &format!("{key}.api_key_env"),
                            format!("environment variable {var} is not set (set it, or mark the provider `optional = true`)"),
                        ))
                    }
                },
                None => None,
            };
            providers.insert(
                name.clone(),
                Arc::new(ProviderConfig {
                    name: name.clone(),
                    kind,
                    base_url,
                    api_key,
                }),
            );
        }

        let mut models: Vec<Arc<ModelConfig>> = Vec::new();
        for (i, m) in raw.models.iter().enumerate() {
            let key = format!("models[{i}]");
            let Some((provider, name)) = m.id.split_once('/') else {
                return Err(err(
                    &format!("{key}.id"),
                    format!("model id {:?} must look like \"provider/model\"", m.id),
                ));
            };
            if skipped.contains(provider) {
                continue;
            }
            if !providers.contains_key(provider) {
                return Err(err(
                    &format!("{key}.id"),
                    format!("model {:?} names provider {provider:?}, which is not defined under [providers]", m.id),
                ));
            }
            if models.iter().any(|x| x.id == m.id) {
                return Err(err(
                    &format!("{key}.id"),
                    format!("model {:?} is defined twice", m.id),
                ));
            }
            if m.input_price_per_mtok < 0.0 || m.output_price_per_mtok < 0.0 {
                return Err(err(&key, "prices must not be negative".into()));
            }
            models.push(Arc::new(ModelConfig {
                id: m.id.clone(),
                provider: provider.to_string(),
                upstream: m.upstream.clone().unwrap_or_else(|| name.to_string()),
                input_price_per_mtok: m.input_price_per_mtok,
                output_price_per_mtok: m.output_price_per_mtok,
                context_window: m.context_window.unwrap_or(128_000),
                max_output_tokens: m.max_output_tokens.unwrap_or(4_096),
                tags: m.tags.clone(),
                mock: m.mock.clone().unwrap_or_default(),
            }));
        }
        let find_model = |key: &str, id: &str| -> Result<Arc<ModelConfig>, ConfigError> {
            models.iter().find(|m| m.id == id).cloned().ok_or_else(|| {
                err(
                    key,
                    format!(
                        "unknown model {id:?}; defined models: {}",
                        models
                            .iter()
                            .map(|m| m.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
        };

        let mut routers = BTreeMap::new();
        for (name, r) in &raw.routers {
            let key = format!("routers.{name}");
            let timeout = parse_opt_duration(&r.timeout, &format!("{key}.timeout"), &err)?
                .unwrap_or(server.timeout);
            let ttft_timeout =
                parse_opt_duration(&r.ttft_timeout, &format!("{key}.ttft_timeout"), &err)?
                    .unwrap_or(server.ttft_timeout);
            let mut routes = Vec::new();
            for (i, route) in r.routes.iter().enumerate() {
                let rkey = format!("{key}.routes[{i}]");
                if route.when.is_none() {
                    return Err(err(
                        &format!("{rkey}.when"),
                        "a route needs a `when` condition (use `default` for the catch-all)".into(),
                    ));
                }
                routes.push(build_route(route, &rkey, i, &find_model, &err)?);
            }
            let default = build_route(
                &r.default,
                &format!("{key}.default"),
                usize::MAX,
                &find_model,
                &err,
            )?;
            routers.insert(
                name.clone(),
                Arc::new(RouterConfig {
                    name: name.clone(),
                    timeout,
                    ttft_timeout,
                    routes,
                    default,
                }),
            );
        }

        let auto = match &raw.auto {
            None => None,
            Some(a) => {
                let default_cost_weight = match &a.default_knob {
                    None => cost_weight("balanced").expect("preset"),
                    Some(k) => cost_weight(k).ok_or_else(|| {
                        err(
                            "auto.default_knob",
                            format!(
                                "{k:?} is not best, balanced, cheap or a number between 0 and 1"
                            ),
                        )
                    })?,
                };
                let mut candidates = Vec::new();
                for (name, target) in &a.candidates {
                    candidates.push((
                        name.clone(),
                        find_model(&format!("auto.candidates.{name:?}"), target)?,
                    ));
                }
                if candidates.is_empty() {
                    return Err(err("auto.candidates", "map each artifact candidate to a configured model, e.g. { \"gpt-4-1106-preview\" = \"openai/gpt-4o\" }".into()));
                }
                let guardrails = a
                    .guardrails
                    .iter()
                    .enumerate()
                    .map(|(i, g)| {
                        CelExpr::compile(g)
                            .map(Arc::new)
                            .map_err(|e| err(&format!("auto.guardrails[{i}]"), e))
                    })
                    .collect::<Result<_, _>>()?;
                Some(AutoConfig {
                    artifact: PathBuf::from(a.artifact.clone().unwrap_or_else(|| "models".into())),
                    encoder: PathBuf::from(
                        a.encoder
                            .clone()
                            .unwrap_or_else(|| crate::encoder::STATIC_DIR.into()),
                    ),
                    default_cost_weight,
                    candidates,
                    guardrails,
                    cache_size: a.cache_size.unwrap_or(4096),
                    encoder_sessions: a.encoder_sessions.unwrap_or(2).max(1),
                    watch: a.watch.unwrap_or(true),
                })
            }
        };
        for (rname, r) in &routers {
            let routes = r
                .routes
                .iter()
                .enumerate()
                .map(|(i, x)| (format!("routers.{rname}.routes[{i}]"), x));
            for (key, route) in routes.chain([(format!("routers.{rname}.default"), &r.default)]) {
                let Some(ra) = &route.auto else { continue };
                let Some(a) = &auto else {
                    return Err(err(
                        &format!("{key}.auto"),
                        "learned routing needs an [auto] section (artifact, encoder, candidates)"
                            .into(),
                    ));
                };
                for m in &ra.candidates {
                    if !a.candidates.iter().any(|(_, c)| &c.id == m) {
                        return Err(err(
                            &format!("{key}.auto.candidates"),
                            format!(
                                "{m:?} is not an [auto] candidate (those are: {})",
                                a.candidates
                                    .iter()
                                    .map(|(_, c)| c.id.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
            }
        }

        Ok(Config {
            source: file.to_string(),
            server,
            logging,
            providers,
            models,
            routers,
            auto,
        })
    }
}

/// Finds a model by id for a config key, or says which models exist.
type ModelLookup<'a> = dyn Fn(&str, &str) -> Result<Arc<ModelConfig>, ConfigError> + 'a;

fn build_route(
    route: &FileRoute,
    key: &str,
    index: usize,
    find_model: &ModelLookup,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<RouteConfig, ConfigError> {
    let name = route.name.clone().unwrap_or_else(|| {
        if index == usize::MAX {
            "default".to_string()
        } else {
            format!("route-{index}")
        }
    });
    let when = match &route.when {
        Some(src) => Some(CelExpr::compile(src).map_err(|e| err(&format!("{key}.when"), e))?),
        None => None,
    };
    let auto = match &route.auto {
        None => None,
        Some(a) => {
            if route.model.is_some() || !route.variants.is_empty() {
                return Err(err(key, "give one of `model`, `variants` or `auto`".into()));
            }
            let knob = a.knob.clone().unwrap_or_else(|| "balanced".into());
            let cost_weight = cost_weight(&knob).ok_or_else(|| {
                err(
                    &format!("{key}.auto.knob"),
                    format!("{knob:?} is not best, balanced, cheap or a number between 0 and 1"),
                )
            })?;
            let candidates = a
                .candidates
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    find_model(&format!("{key}.auto.candidates[{i}]"), m).map(|m| m.id.clone())
                })
                .collect::<Result<_, _>>()?;
            Some(Arc::new(RouteAuto {
                candidates,
                knob,
                cost_weight,
            }))
        }
    };
    let variants = match (&route.model, route.variants.is_empty()) {
        _ if auto.is_some() => vec![],
        (Some(_), false) => {
            return Err(err(
                key,
                "give either `model` or `variants`, not both".into(),
            ))
        }
        (None, true) => {
            return Err(err(
                key,
                "a route needs `model`, `variants` or `auto`".into(),
            ))
        }
        (Some(m), true) => vec![VariantConfig {
            name: m.clone(),
            model: find_model(&format!("{key}.model"), m)?,
            weight: 100,
        }],
        (None, false) => {
            let total: u32 = route.variants.iter().map(|v| v.weight).sum();
            if total != 100 {
                return Err(err(
                    &format!("{key}.variants"),
                    format!("variant weights sum to {total}, not 100"),
                ));
            }
            let mut out = Vec::new();
            for (i, v) in route.variants.iter().enumerate() {
                out.push(VariantConfig {
                    name: v.name.clone().unwrap_or_else(|| v.model.clone()),
                    model: find_model(&format!("{key}.variants[{i}].model"), &v.model)?,
                    weight: v.weight,
                });
            }
            out
        }
    };
    let fallbacks = route
        .fallbacks
        .iter()
        .enumerate()
        .map(|(i, m)| find_model(&format!("{key}.fallbacks[{i}]"), m))
        .collect::<Result<_, _>>()?;
    Ok(RouteConfig {
        name,
        when,
        variants,
        fallbacks,
        auto,
    })
}

fn parse_opt_duration(
    value: &Option<String>,
    key: &str,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Option<Duration>, ConfigError> {
    value
        .as_deref()
        .map(|s| parse_duration(s).map_err(|e| err(key, e)))
        .transpose()
}

/// Parses a human duration: `"800ms"`, `"30s"`, `"2m"`, `"1.5s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like \"800ms\", \"30s\" or \"2m\""))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{s:?} has no known unit; use ms, s, m or h (e.g. \"800ms\")"
            ))
        }
    };
    if secs <= 0.0 {
        return Err(format!("{s:?} must be greater than zero"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Best-effort dotted key for a TOML error, from the line its span starts on.
fn toml_error_key(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return "(document)".into();
    };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let table = before
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            l.starts_with('[')
                .then(|| l.trim_matches(|c| c == '[' || c == ']').to_string())
        })
        .unwrap_or_default();
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    let field = line.split('=').next().unwrap_or("").trim();
    let key = match (table.is_empty(), field.is_empty() || field.starts_with('[')) {
        (true, _) => field.to_string(),
        (false, true) => table,
        (false, false) => format!("{table}.{field}"),
    };
    format!("{key} (line {line_no})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", &|k| {
            (k == "SET_KEY").then(|| "sk-123".into())
        })
    }

    const BASE: &str = r#"
[providers.mock]
kind = "mock"
[[models]]
id = "mock/a"
[[models]]
id = "mock/b"
"#;

    #[test]
    fn embedded_default_loads() {
        let c = Config::parse(DEFAULT_CONFIG, "default", &|_| None).unwrap();
        assert!(c.models.iter().any(|m| m.provider == "mock"));
        assert!(!c.providers.contains_key("openai"), "openai needs its key");
        let with_keys = Config::parse(DEFAULT_CONFIG, "default", &|_| Some("k".into())).unwrap();
        assert!(with_keys.providers.contains_key("openai"));
        assert!(with_keys.providers.contains_key("anthropic"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("800ms").unwrap(), Duration::from_millis(800));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("fast")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration("10 parsecs").unwrap_err().contains("unit"));
    }

    #[test]
    fn bad_cel_names_expression_and_key() {
        let e = parse(&format!(
            "{BASE}[routers.r]\nroutes = [{{ when = 'plan == = \"free\"', model = \"mock/a\" }}]\ndefault = {{ model = \"mock/b\" }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "routers.r.routes[0].when");
        assert!(e.reason.contains("plan == = \"free\""), "{e}");
        assert!(e.to_string().contains("test.toml"));
    }

    #[test]
    fn weights_must_sum_to_100() {
        let e = parse(&format!(
            "{BASE}[routers.r]\ndefault = {{ variants = [{{ model = \"mock/a\", weight = 60 }}, {{ model = \"mock/b\", weight = 30 }}] }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "routers.r.default.variants");
        assert!(e.reason.contains("sum to 90"));
    }

    #[test]
    fn unknown_model_in_route() {
        let e = parse(&format!(
            "{BASE}[routers.r]\ndefault = {{ model = \"mock/zzz\", fallbacks = [] }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "routers.r.default.model");
        assert!(e.reason.contains("unknown model \"mock/zzz\""));
        let e = parse(&format!(
            "{BASE}[routers.r]\ndefault = {{ model = \"mock/a\", fallbacks = [\"mock/q\"] }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "routers.r.default.fallbacks[0]");
    }

    #[test]
    fn missing_env_var_for_used_provider() {
        let e =
            parse("[providers.oai]\nkind = \"openai\"\napi_key_env = \"UNSET_KEY\"\n").unwrap_err();
        assert_eq!(e.key, "providers.oai.api_key_env");
        assert!(e.reason.contains("UNSET_KEY is not set"));
        let ok = parse("[providers.oai]\nkind = \"openai\"\napi_key_env = \"SET_KEY\"\n").unwrap();
        assert_eq!(ok.providers["oai"].api_key.as_deref(), Some("sk-123"));
    }

    #[test]
    fn unknown_keys_and_bad_types_are_reported_with_location() {
        let e = parse("[server]\nlisten = \"127.0.0.1:1\"\ntimeoutt = \"1s\"\n").unwrap_err();
        assert!(e.reason.contains("timeoutt"), "{e}");
        assert!(e.key.starts_with("server"), "{e}");
        let e = parse(&format!(
            "{BASE}[routers.r]\ntimeout = \"soon\"\ndefault = {{ model = \"mock/a\" }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "routers.r.timeout");
    }
}
