//! `[server]`: listening, limits, timeouts, cooldowns, router keys.

use super::duration::parse_opt_duration;
use super::source::{ConfigError, Source};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileServer {
    listen: Option<String>,
    max_body_bytes: Option<usize>,
    max_media_bytes: Option<usize>,
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
    ttft_timeout_with_fallback: Option<String>,
    stream_idle_timeout: Option<String>,
    retries: Option<u32>,
    retry_max_wait: Option<String>,
    rescue_attempts: Option<u32>,
    #[serde(default)]
    api_keys: Vec<String>,
    api_keys_env: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub max_body_bytes: usize,
    /// The largest inline image or audio part (decoded bytes); larger ones get a 400.
    pub max_media_bytes: usize,
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
    /// How a chain retries and fails over.
    pub failover: Failover,
    pub api_keys: Vec<String>,
}

/// Same-model retries and the limits that decide when to move on (`[server]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Failover {
    /// Tries of the same model after a 5xx, a reset or a 429 before failing over (default 1);
    /// routers may set their own.
    pub retries: u32,
    /// The longest `Retry-After` waited out for a same-model retry (longer: fail over at once).
    pub retry_max_wait: Duration,
    /// The first-token limit of an attempt that has a fallback after it (the last model of a
    /// chain waits `ttft_timeout`).
    pub ttft_timeout_with_fallback: Duration,
    /// A stream silent for this long between chunks has stalled: it is rescued or ended.
    pub stream_idle_timeout: Duration,
    /// Times a stream that broke or stalled after bytes were sent is continued on the next
    /// model of its chain (0: never).
    pub rescue_attempts: u32,
}

impl FileServer {
    /// Validates the section.
    pub(super) fn validate(self, src: &Source) -> Result<ServerConfig, ConfigError> {
        let raw = self;
        let err = |key: &str, reason: String| src.err(key, reason);
        let env = src.env;
        let server = ServerConfig {
            listen: raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
            max_body_bytes: raw.max_body_bytes.unwrap_or(4 * 1024 * 1024),
            max_media_bytes: raw.max_media_bytes.unwrap_or(20 * 1024 * 1024),
            max_json_values: raw.max_json_values.unwrap_or(50_000).max(1),
            max_upstream_body_bytes: raw
                .max_upstream_body_bytes
                .unwrap_or(32 * 1024 * 1024)
                .max(1),
            max_body_memory: raw.max_body_memory.unwrap_or(256 * 1024 * 1024).max(1024),
            read_timeout: parse_opt_duration(&raw.read_timeout, "server.read_timeout", &err)?
                .unwrap_or(Duration::from_secs(30)),
            max_in_flight: raw.max_in_flight.unwrap_or(1024).max(1),
            max_in_flight_per_key: raw.max_in_flight_per_key.unwrap_or(0),
            metrics_public: raw.metrics_public.unwrap_or(false),
            deadline: parse_opt_duration(&raw.deadline, "server.deadline", &err)?,
            cooldown_failures: raw.cooldown_failures.unwrap_or(5),
            cooldown: parse_opt_duration(&raw.cooldown, "server.cooldown", &err)?
                .unwrap_or(Duration::from_secs(30)),
            shutdown_grace: parse_opt_duration(&raw.shutdown_grace, "server.shutdown_grace", &err)?
                .unwrap_or(Duration::from_secs(30)),
            watch_config: raw.watch_config.unwrap_or(false),
            timeout: parse_opt_duration(&raw.timeout, "server.timeout", &err)?
                .unwrap_or(Duration::from_secs(120)),
            ttft_timeout: parse_opt_duration(&raw.ttft_timeout, "server.ttft_timeout", &err)?
                .unwrap_or(Duration::from_secs(30)),
            failover: Failover {
                retries: raw.retries.unwrap_or(1),
                retry_max_wait: parse_opt_duration(
                    &raw.retry_max_wait,
                    "server.retry_max_wait",
                    &err,
                )?
                .unwrap_or(Duration::from_secs(5)),
                ttft_timeout_with_fallback: parse_opt_duration(
                    &raw.ttft_timeout_with_fallback,
                    "server.ttft_timeout_with_fallback",
                    &err,
                )?
                .unwrap_or(Duration::from_secs(10)),
                stream_idle_timeout: parse_opt_duration(
                    &raw.stream_idle_timeout,
                    "server.stream_idle_timeout",
                    &err,
                )?
                .unwrap_or(Duration::from_secs(20)),
                rescue_attempts: raw.rescue_attempts.unwrap_or(1),
            },
            api_keys: {
                let mut keys = raw.api_keys.clone();
                if let Some(var) = &raw.api_keys_env {
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
        if server.failover.retries > 5 {
            return Err(err(
                "server.retries",
                format!(
                    "at most 5 same-model retries, got {}",
                    server.failover.retries
                ),
            ));
        }
        if server.failover.stream_idle_timeout.is_zero() {
            return Err(err("server.stream_idle_timeout", "must be above 0".into()));
        }
        if server.max_body_memory < server.max_body_bytes {
            return Err(err(
                "server.max_body_memory",
                format!(
                    "{} is smaller than server.max_body_bytes ({}): no body of the largest allowed size could ever be admitted",
                    server.max_body_memory, server.max_body_bytes
                ),
            ));
        }
        Ok(server)
    }
}
