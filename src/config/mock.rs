//! `mock = { ... }` of a model of a `mock` provider: what the mock answers and how it
//! misbehaves (the script). The HTTP mock upstream reads the same scripts from model names.

use serde::Deserialize;

/// How a mock model behaves. In TOML: `mock = { script = "status:429", latency_ms = 50 }`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MockBehaviour {
    /// Fixed answer text; by default the mock echoes the last user message.
    pub reply: Option<String>,
    /// `ok` (default), `status:NNN`, `hang_headers`, `hang_ttft`, `drop_mid`, `malformed`.
    #[serde(default)]
    pub script: Option<String>,
    /// Delay before the response starts.
    #[serde(default)]
    pub latency_ms: u64,
    /// Delay between streamed chunks.
    #[serde(default)]
    pub chunk_delay_ms: u64,
}

/// A parsed script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Ok,
    /// Respond with this HTTP status and an error body.
    Status(u16),
    /// Never send response headers.
    HangHeaders,
    /// Send headers (and the role chunk when streaming) but never the first token.
    HangTtft,
    /// Stream some tokens, then drop the connection.
    DropMid,
    /// Return a body that is not valid JSON.
    Malformed,
}

impl Script {
    /// Parses `ok`, `status:429` (or `status-429`), `hang_headers`, `hang_ttft`, `drop_mid`,
    /// `malformed`. Anything else is `ok`, so that real-looking model names just answer.
    pub fn parse(s: &str) -> Script {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        if let Some(code) = s
            .strip_prefix("status:")
            .or_else(|| s.strip_prefix("status_"))
        {
            if let Ok(c) = code.parse::<u16>() {
                return Script::Status(c);
            }
        }
        match s.as_str() {
            "hang_headers" => Script::HangHeaders,
            "hang_ttft" => Script::HangTtft,
            "drop_mid" => Script::DropMid,
            "malformed" => Script::Malformed,
            _ => Script::Ok,
        }
    }
}

impl MockBehaviour {
    pub fn script(&self) -> Script {
        self.script
            .as_deref()
            .map(Script::parse)
            .unwrap_or(Script::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse() {
        assert_eq!(Script::parse("status:429"), Script::Status(429));
        assert_eq!(Script::parse("status-503"), Script::Status(503));
        assert_eq!(Script::parse("hang-ttft"), Script::HangTtft);
        assert_eq!(Script::parse("gpt-4o"), Script::Ok);
    }
}
