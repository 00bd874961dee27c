//! Hardening: secrets and private prompts never escape, memory and time are bounded under any
//! input, overload is shed, failing models cool down, a request has a total deadline. The real
//! server on loopback in front of the scripted mock upstream, which (like a careless upstream)
//! quotes the credentials and prompt it received in its error bodies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

mod common;

use common::{sse, user, Harness, Options};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const UPSTREAM_KEY: &str = "sk-upstream-secret-123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_secrets_never_reach_the_client_the_log_or_metrics() {
    let h = Harness::start().await;
    let mut seen = Vec::new();
    for (path, model) in [
        ("/v1/chat/completions", "up/500"),
        ("/v1/chat/completions", "anth/429"),
        ("/v1/messages", "up/500"),
        ("/v1/messages", "anth/429"),
    ] {
        for stream in [false, true] {
            // Failed outright: the error body.
            let r = h
                .post(path, json!({"model": model, "max_tokens": 20, "stream": stream, "messages": user("hello")}))
                .await;
            let text = r.text().await.unwrap();
            assert!(
                text.contains("scripted"),
                "the upstream's words arrive: {text}"
            );
            seen.push(text);
            // Failed over: the attempt chain of a served response.
            let r = h
                .post(path, json!({"model": model, "models": ["up/ok"], "max_tokens": 20, "stream": stream, "messages": user("hello")}))
                .await;
            assert_eq!(r.status(), 200);
            seen.push(r.text().await.unwrap());
        }
    }
    seen.push(h.metrics().await);
    let logs = h.stop_and_read_logs().await;
    assert_eq!(logs.len(), 16);
    seen.push(serde_json::to_string(&logs).unwrap());
    for text in &seen {
        assert!(!text.contains(UPSTREAM_KEY), "the key leaked: {text}");
    }
    assert!(
        seen.iter().any(|t| t.contains("[REDACTED]")),
        "the echo was redacted, not lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_text_logging_the_upstreams_words_stay_out_of_the_log() {
    let h = Harness::start_with(Options {
        log_text: false,
        ..Options::default()
    })
    .await;
    let prompt = "my very private prompt";
    let (status, _, v) = h
        .chat(json!({"model": "up/400", "messages": user(prompt)}))
        .await;
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains(prompt),
        "the client may see its own prompt quoted"
    );
    let (status, _, _) = h
        .chat(json!({"model": "up/500", "models": ["up/ok"], "messages": user(prompt)}))
        .await;
    assert_eq!(status, 200);
    let logs = h.stop_and_read_logs().await;
    let text = serde_json::to_string(&logs).unwrap();
    assert!(!text.contains(prompt), "{text}");
    assert_eq!(
        logs[0]["attempts"][0]["status"], 400,
        "status and kind stay"
    );
    assert_eq!(logs[0]["attempts"][0]["error_kind"], "status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_after_bytes_is_a_failed_attempt() {
    let h = Harness::start().await;
    let r = h
        .post(
            "/v1/chat/completions",
            json!({"model": "up/drop", "stream": true, "messages": user("x y z")}),
        )
        .await;
    let events = sse(&r.text().await.unwrap());
    let last: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    let attempt = &last["error"]["metadata"]["attempts"][0];
    assert_eq!(attempt["success"], false, "{last}");
    assert_eq!(attempt["error_kind"], "stream_broken");
    assert!(attempt["time_to_first_token_ms"].is_number());
    let m = h.metrics().await;
    assert!(
        m.contains("switchyard_upstream_attempts_total{model=\"up/drop\",outcome=\"failure\"} 1"),
        "{m}"
    );
    let logs = h.stop_and_read_logs().await;
    assert_eq!(logs[0]["attempts"][0]["success"], false);
    assert!(
        logs[0]["ttft_ms"].is_number(),
        "the client still got a first token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_get_405_with_a_body_in_the_endpoints_shape() {
    let h = Harness::start().await;
    for (method, path, allow) in [
        ("GET", "/v1/chat/completions", "POST"),
        ("OPTIONS", "/v1/chat/completions", "POST"),
        ("POST", "/v1/models", "GET"),
        ("POST", "/metrics", "GET"),
        ("GET", "/v1/messages", "POST"),
    ] {
        let r = h
            .http
            .request(method.parse().unwrap(), format!("{}{path}", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow);
        let v: Value = r.json().await.unwrap();
        if path == "/v1/messages" {
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], "invalid_request_error");
        } else {
            assert_eq!(v["error"]["code"], "method_not_allowed", "{v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_many_tiny_values_is_refused_before_parsing() {
    let h = Harness::start_with(Options {
        server_extra: "max_json_values = 2000",
        ..Options::default()
    })
    .await;
    let messages: Vec<Value> = (0..1000)
        .map(|_| json!({"role": "user", "content": "a"}))
        .collect();
    let (status, _, v) = h
        .chat(json!({"model": "up/ok", "messages": messages}))
        .await;
    assert_eq!(status, 413, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("server.max_json_values"));
    let (status, _, _) = h
        .chat(json!({"model": "up/ok", "messages": user("fine")}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_silent_clients_are_cut_off_at_the_read_timeout() {
    let h = Harness::start_with(Options {
        server_extra: "read_timeout = \"300ms\"",
        ..Options::default()
    })
    .await;
    let addr = h.server.addr;
    let closed_within = |mut s: tokio::net::TcpStream| async move {
        let t = Instant::now();
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(r.is_ok(), "the connection was held open");
        (t.elapsed(), String::from_utf8_lossy(&buf).to_string())
    };
    // Silent, and half a request line.
    let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    for s in [silent, half] {
        let (took, _) = closed_within(s).await;
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    // A body shorter than its content-length: 408 in the API's shape.
    let mut short = tokio::net::TcpStream::connect(addr).await.unwrap();
    short
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\"")
        .await
        .unwrap();
    let (took, text) = closed_within(short).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("server.read_timeout"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_clips_answers_at_max_text_bytes_but_counts_them_whole() {
    // A model whose answer is 20,000 characters, streamed and not.
    let dir = std::env::temp_dir().join(format!("sy-clip-{}", uuid::Uuid::new_v4().simple()));
    let text = format!(
        "[logging]\ndir = \"{}\"\nmax_text_bytes = 1000\n[providers.m]\nkind = \"mock\"\n[[models]]\nid = \"m/long\"\nmock = {{ reply = \"{}\" }}\n",
        dir.display(),
        "word ".repeat(4000)
    );
    let config = switchyard::config::Config::parse(&text, "clip.toml", &|_| None).unwrap();
    let server = switchyard::app::Server::start(config, "127.0.0.1:0")
        .await
        .unwrap();
    for stream in [true, false] {
        let r = reqwest::Client::new()
            .post(format!("http://{}/v1/chat/completions", server.addr))
            .json(&json!({"model": "m/long", "stream": stream, "messages": user("go")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.text().await.unwrap().len() > 20_000,
            "the client gets it all"
        );
    }
    server.stop().await;
    let logs =
        switchyard_learn::logfiles::read_records::<serde_json::Value>(&dir, "requests").unwrap();
    assert_eq!(logs.len(), 2);
    for l in &logs {
        let c = l["completion"].as_str().unwrap();
        assert!(c.len() < 1100, "{}", c.len());
        assert!(c.starts_with("word word"));
        assert!(
            c.ends_with("…[19000 more bytes not logged]"),
            "{}",
            &c[c.len().saturating_sub(100)..]
        );
        assert!(l["completion_tokens"].as_u64().unwrap() >= 4000, "{l}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_in_flight_bound_requests_are_shed_at_once() {
    let h = Harness::start_with(Options {
        server_extra: "max_in_flight = 2",
        ..Options::default()
    })
    .await;
    // Two requests that hang (until the 2 s timeout) fill the server.
    let hang = || {
        h.spawn_chat(
            json!({"model": "up/hang-headers", "messages": user("x")}),
            None,
        )
    };
    let (a, b) = (hang(), hang());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let (status, headers, v) = h
        .chat(json!({"model": "up/ok", "messages": user("x")}))
        .await;
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "shed at once, not after the 2 s the admitted requests hang"
    );
    assert_eq!(status, 503, "{v}");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(v["error"]["code"], "overloaded");
    let r = h
        .post(
            "/v1/messages",
            json!({"model": "up/ok", "max_tokens": 5, "messages": user("x")}),
        )
        .await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert_eq!(a.await.unwrap(), 504);
    assert_eq!(b.await.unwrap(), 504);
    let (status, _, _) = h
        .chat(json!({"model": "up/ok", "messages": user("x")}))
        .await;
    assert_eq!(status, 200, "capacity is back");
    assert!(h.metrics().await.contains("switchyard_shed_server_total 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_bound_answers_429_for_that_key_only_and_metrics_need_a_key() {
    let h = Harness::start_with(Options {
        server_extra: "api_keys_env = \"TEST_ROUTER_KEYS\"\nmax_in_flight_per_key = 1",
        ..Options::default()
    })
    .await;
    let busy = h.spawn_chat(
        json!({"model": "up/hang-headers", "messages": user("x")}),
        Some("router-key-1"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let send = |key: &'static str| {
        h.http
            .post(format!("{}/v1/chat/completions", h.base))
            .bearer_auth(key)
            .json(&json!({"model": "up/ok", "messages": user("x")}))
            .send()
    };
    let r = send("router-key-1").await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(send("router-key-2").await.unwrap().status(), 200);
    busy.await.unwrap();
    // /metrics needs the key too when keys are configured.
    let get = |key: Option<&'static str>| {
        let mut r = h.http.get(format!("{}/metrics", h.base));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    let m = get(Some("router-key-2")).await.unwrap();
    assert_eq!(m.status(), 200);
    assert!(m
        .text()
        .await
        .unwrap()
        .contains("switchyard_shed_key_total 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_made_public() {
    let h = Harness::start_with(Options {
        server_extra: "api_keys_env = \"TEST_ROUTER_KEYS\"\nmetrics_public = true",
        ..Options::default()
    })
    .await;
    assert_eq!(h.get("/metrics").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_cools_down_is_probed_and_shows_in_models_and_metrics() {
    let h = Harness::start_with(Options {
        server_extra: "cooldown_failures = 2\ncooldown = \"1s\"",
        ..Options::default()
    })
    .await;
    let attempts = |v: &Value| -> Vec<(String, Option<String>)> {
        v["metadata"]["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["model"].as_str().unwrap().to_string(),
                    a["skipped"].as_str().map(String::from),
                )
            })
            .collect()
    };
    let ask = || h.chat(json!({"model": "up/500", "models": ["up/ok"], "messages": user("x")}));
    for _ in 0..2 {
        let (_, _, v) = ask().await;
        assert_eq!(attempts(&v)[0], ("up/500".to_string(), None));
    }
    let (status, _, v) = ask().await;
    assert_eq!(status, 200);
    assert_eq!(
        attempts(&v),
        vec![
            ("up/500".to_string(), Some("cooldown".to_string())),
            ("up/ok".to_string(), None)
        ]
    );
    let models: Value = h.get_json("/v1/models").await;
    let m = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "up/500")
        .unwrap();
    assert_eq!(m["cooldown"]["state"], "open", "{m}");
    // After the cooldown one request probes it; it fails again, so it is skipped again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, v) = ask().await;
    assert_eq!(attempts(&v)[0], ("up/500".to_string(), None), "the probe");
    let (_, _, v) = ask().await;
    assert_eq!(attempts(&v)[0].1.as_deref(), Some("cooldown"));
    // Alone in its chain, a cooling model is still tried.
    let (status, _, v) = h
        .chat(json!({"model": "up/500", "messages": user("x")}))
        .await;
    assert_eq!(status, 502);
    assert!(v["error"]["attempts"][0]["skipped"].is_null());
    let m = h.metrics().await;
    assert!(m.contains("switchyard_cooldowns_total 2"), "{m}");
    assert!(m.contains("switchyard_cooldown_skips_total 2"), "{m}");
    let logs = h.stop_and_read_logs().await;
    assert!(logs
        .iter()
        .any(|l| l["attempts"][0]["skipped"] == "cooldown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_retry_after_cools_a_model_and_all_429_passes_it_on() {
    let h = Harness::start().await;
    // Every model answers 429 with Retry-After: 1: the client gets 429 and Retry-After.
    let (status, headers, v) = h
        .chat(json!({"model": "up/429", "models": ["anth/429"], "messages": user("x")}))
        .await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    // The Retry-After put up/429 in cooldown at once (threshold not reached).
    let (status, _, v) = h
        .chat(json!({"model": "up/429", "models": ["up/ok"], "messages": user("x")}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["metadata"]["attempts"][0]["skipped"], "cooldown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_deadline_bounds_the_whole_failover_chain() {
    let h = Harness::start_with(Options {
        server_extra: "deadline = \"600ms\"",
        ..Options::default()
    })
    .await;
    // Each attempt may take 2 s; the chain has two hanging models, then a good one.
    let t = Instant::now();
    let (status, _, v) = h
        .chat(json!({"model": "up/hang-headers", "models": ["up/hang-ttft", "up/ok"], "messages": user("x")}))
        .await;
    let took = t.elapsed();
    assert_eq!(status, 504, "{v}");
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_millis(1900),
        "{took:?}"
    );
    assert!(v["error"]["attempts"][0]["error"]
        .as_str()
        .unwrap()
        .contains("server.deadline"));
    assert_eq!(v["error"]["attempts"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_upstream_keeps_a_bounded_record() {
    let h = Harness::start().await;
    let url = format!("{}/chat/completions", h.mock.base_url());
    for i in 0..(switchyard::testing::upstream::RECORD_LIMIT + 50) {
        h.http
            .post(&url)
            .json(&json!({"model": "ok", "messages": user(&i.to_string())}))
            .send()
            .await
            .unwrap();
    }
    let recorded = h.mock.bodies();
    assert_eq!(recorded.len(), switchyard::testing::upstream::RECORD_LIMIT);
    assert_eq!(recorded.last().unwrap()["messages"][0]["content"], "1049");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_in_flight_share_a_memory_budget() {
    let h = Harness::start_with(Options {
        server_extra: "max_body_memory = 100000",
        ..Options::default()
    })
    .await;
    let big = "x".repeat(60_000);
    let held = h.spawn_chat(
        json!({"model": "up/hang-headers", "messages": user(&big)}),
        None,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, headers, v) = h
        .chat(json!({"model": "up/ok", "messages": user(&big)}))
        .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(headers["retry-after"], "1");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("server.max_body_memory"));
    let (status, _, _) = h
        .chat(json!({"model": "up/ok", "messages": user("small")}))
        .await;
    assert_eq!(status, 200, "small bodies still fit");
    assert_eq!(held.await.unwrap(), 504);
    let (status, _, _) = h
        .chat(json!({"model": "up/ok", "messages": user(&big)}))
        .await;
    assert_eq!(status, 200, "the budget is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_answer_over_the_body_limit_fails_over_instead_of_filling_memory() {
    let h = Harness::start_with(Options {
        server_extra: "max_upstream_body_bytes = 100",
        ..Options::default()
    })
    .await;
    for model in ["up/ok", "anth/claude"] {
        let (status, _, v) = h
            .chat(json!({"model": model, "models": ["mock/fast"], "messages": user("hello")}))
            .await;
        assert_eq!(status, 200, "{v}");
        let attempt = &v["metadata"]["attempts"][0];
        assert_eq!(attempt["error_kind"], "malformed", "{attempt}");
        assert!(attempt["error"]
            .as_str()
            .unwrap()
            .contains("server.max_upstream_body_bytes"));
        assert_eq!(v["model"], "mock/fast");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_that_outlive_requests_show_their_bytes_and_bounds_in_metrics() {
    let h = Harness::start().await;
    for i in 0..5 {
        let (status, _, _) = h
            .chat(json!({"model": "up/ok", "messages": user(&format!("hello {i}"))}))
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(h.get("/v1/analytics/traffic").await.status(), 200);
    let text = h.metrics().await;
    let gauge = |name: &str, table: &str| -> f64 {
        let prefix = format!("{name}{{table=\"{table}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{text}"))
            .parse()
            .unwrap()
    };
    for table in ["feedback_index", "analytics"] {
        let (held, bound) = (
            gauge("switchyard_memory_bytes", table),
            gauge("switchyard_memory_limit_bytes", table),
        );
        assert!(held > 0.0 && held <= bound, "{table}: {held} of {bound}");
    }
}
