//! Test harness: a real Switchyard server on loopback in front of an in-process scripted mock
//! upstream that speaks OpenAI and Anthropic.

#![allow(dead_code)]

pub mod artifacts;

use serde_json::Value;
use std::path::PathBuf;
use switchyard::app::Server;
use switchyard::config::Config;
use switchyard::testing::upstream::MockUpstream;

pub struct Harness {
    pub mock: MockUpstream,
    pub server: Server,
    pub base: String,
    pub log_dir: PathBuf,
    pub http: reqwest::Client,
}

/// The config used by gateway tests, shared with the Python suite: `{MOCK}` is replaced by the
/// mock's base URL and `{LOGS}` by a fresh log dir; `extra` is appended (routers, `[auto]`, ...).
pub const CONFIG: &str = include_str!("../fixtures/gateway.toml");

pub struct Options {
    pub server_extra: &'static str,
    pub log_text: bool,
    /// Appended to the config (e.g. an `[auto]` section).
    pub extra: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            server_extra: "",
            log_text: true,
            extra: String::new(),
        }
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Harness {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let log_dir =
            std::env::temp_dir().join(format!("switchyard-test-{}", uuid::Uuid::new_v4().simple()));
        let text = CONFIG
            .replace("{MOCK}", &mock.base_url())
            .replace("{LOGS}", &log_dir.display().to_string())
            .replace("{LOG_TEXT}", &opts.log_text.to_string())
            .replace("{SERVER_EXTRA}", opts.server_extra)
            .replace("{EXTRA}", &opts.extra);
        let env = |k: &str| match k {
            "TEST_UPSTREAM_KEY" => Some("sk-upstream-secret-123".to_string()),
            "TEST_ROUTER_KEYS" => Some("router-key-1,router-key-2".to_string()),
            _ => None,
        };
        let config = Config::parse(&text, "test.toml", &env).unwrap();
        let server = Server::start(config, "127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", server.addr);
        Harness {
            mock,
            server,
            base,
            log_dir,
            http: reqwest::Client::new(),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// A GET answered with JSON (no router key).
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    /// The `/metrics` text (no router key).
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// Sends a chat request in the background (with a router key, if given); its status later.
    pub fn spawn_chat(
        &self,
        body: Value,
        key: Option<&'static str>,
    ) -> tokio::task::JoinHandle<reqwest::StatusCode> {
        let mut r = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        tokio::spawn(async move { r.send().await.unwrap().status() })
    }

    pub async fn chat(&self, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = self.post("/v1/chat/completions", body).await;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, headers, v)
    }

    /// Stops the server (flushing logs) and returns every log record.
    pub async fn stop_and_read_logs(self) -> Vec<Value> {
        let dir = self.log_dir.clone();
        self.server.stop().await;
        let records =
            switchyard_learn::logfiles::read_records::<serde_json::Value>(&dir, "requests")
                .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        records
    }
}

/// Sends SIGHUP to this test process (the server under test reloads on it).
pub fn sighup_self() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Parses an SSE body into (event name, data) pairs.
pub fn sse(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (event, data)
        })
        .collect()
}

pub fn user(text: &str) -> Value {
    serde_json::json!([{"role": "user", "content": text}])
}

/// (model, success) for each attempt in `metadata.attempts`.
pub fn chain(meta: &Value) -> Vec<(String, bool)> {
    meta["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["model"].as_str().unwrap().to_string(),
                a["success"].as_bool().unwrap(),
            )
        })
        .collect()
}
