//! The HTTP side shared by the real providers: one client, bounded body reads, and upstream
//! errors (status, message, `Retry-After`) from responses and send failures.

use crate::error::{FailureKind, UpstreamError};
use serde_json::Value;

/// The HTTP client shared by all providers.
#[allow(
    clippy::expect_used,
    reason = "static settings: the builder fails only without a TLS backend, which is compiled in"
)]
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("the HTTP client builds with static settings")
}

/// An upstream endpoint's URL, parsed once when the provider is built: each request clones
/// it instead of parsing the string again. A string that does not parse is kept, and each
/// request fails on it as before.
pub enum Endpoint {
    Parsed(reqwest::Url),
    Unparsed(String),
}

impl Endpoint {
    pub fn new(url: String) -> Endpoint {
        match reqwest::Url::parse(&url) {
            Ok(u) => Endpoint::Parsed(u),
            Err(_) => Endpoint::Unparsed(url),
        }
    }

    /// A POST to this endpoint.
    pub fn post(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        match self {
            Endpoint::Parsed(u) => http.post(u.clone()),
            Endpoint::Unparsed(s) => http.post(s.as_str()),
        }
    }
}

/// Error bodies are read up to this many bytes (the message is what matters).
const ERROR_BODY_BYTES: usize = 64 * 1024;

/// Reads a whole body, at most `limit` bytes: a longer one is an error, so an upstream can
/// never make Switchyard buffer more than the limit.
pub async fn read_body(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, UpstreamError> {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) if out.len() + c.len() > limit => {
                return Err(UpstreamError::new(
                    FailureKind::Malformed,
                    format!(
                    "upstream answer is larger than {limit} bytes (server.max_upstream_body_bytes)"
                ),
                ))
            }
            Ok(Some(c)) => out.extend_from_slice(&c),
            Ok(None) => return Ok(out),
            Err(e) => {
                return Err(UpstreamError::new(
                    FailureKind::StreamBroken,
                    format!("reading the body failed: {e}"),
                ))
            }
        }
    }
}

/// Reads an error response into an [`UpstreamError`], keeping the upstream's message.
pub async fn status_error(mut resp: reqwest::Response) -> UpstreamError {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let mut raw = Vec::new();
    while let Ok(Some(c)) = resp.chunk().await {
        raw.extend_from_slice(&c[..c.len().min(ERROR_BODY_BYTES - raw.len())]);
        if raw.len() >= ERROR_BODY_BYTES {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let parsed = serde_json::from_str::<Value>(&text).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.get("message").or(Some(e)))
                .and_then(|m| m.as_str().map(String::from))
        })
        .unwrap_or_else(|| text.chars().take(500).collect());
    // OpenAI's `error.code` (or `error.type`); Anthropic's `error.type`.
    let code = parsed.as_ref().and_then(|v| {
        let e = v.get("error")?;
        e.get("code")
            .and_then(Value::as_str)
            .or_else(|| e.get("type").and_then(Value::as_str))
            .map(String::from)
    });
    UpstreamError::status(status, message)
        .with_retry_after(retry_after)
        .with_code(code)
}

/// `retry-after-ms` (OpenAI) or `retry-after` in seconds; an HTTP date is not used.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let number = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    number("retry-after-ms")
        .map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(std::time::Duration::from_secs_f64))
        .map(|d| d.min(std::time::Duration::from_secs(3600)))
}

/// Maps a reqwest send error.
pub fn send_error(e: reqwest::Error) -> UpstreamError {
    UpstreamError::new(FailureKind::Connect, format!("request failed: {e}"))
}
