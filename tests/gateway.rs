//! End-to-end gateway tests: the real server on loopback, scripted mock upstreams, raw HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

mod common;

use common::{chain, sse, user, Harness, Options};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_upstream_answers_and_passes_unknown_fields_through() {
    let h = Harness::start().await;
    let (status, headers, v) = h
        .chat(json!({"model": "up/ok", "messages": user("ping"), "seed": 42, "logit_bias": {"50256": -100},
                     "custom_vendor_flag": true, "metadata": {"plan": "pro"}, "user": "u-1", "temperature": 0.2}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model"], "up/ok");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from ok! You said: ping"
    );
    assert_eq!(headers["x-switchyard-model"], "up/ok");
    let request_id = headers["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(v["metadata"]["request_id"], request_id.as_str());
    let overhead: f64 = headers["x-switchyard-overhead-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(overhead >= 0.0);
    assert_eq!(chain(&v["metadata"]), vec![("up/ok".to_string(), true)]);
    let usage = &v["usage"];
    let expected_cost = (usage["prompt_tokens"].as_f64().unwrap() * 1.0
        + usage["completion_tokens"].as_f64().unwrap() * 2.0)
        / 1e6;
    assert!((v["metadata"]["cost_usd"].as_f64().unwrap() - expected_cost).abs() < 1e-12);

    let sent = &h.mock.bodies()[0];
    assert_eq!(sent["model"], "ok", "the upstream name is sent");
    assert_eq!(sent["seed"], 42);
    assert_eq!(sent["custom_vendor_flag"], true);
    assert_eq!(sent["logit_bias"], json!({"50256": -100}));
    assert_eq!(sent["user"], "u-1");
    assert!(
        sent.get("metadata").is_none(),
        "switchyard's metadata is not forwarded"
    );
    let headers = h.mock.recorded.lock().unwrap()[0]["headers"].clone();
    assert_eq!(headers["authorization"], "Bearer sk-upstream-secret-123");

    let logs = h.stop_and_read_logs().await;
    assert_eq!(logs.len(), 1);
    let rec = &logs[0];
    assert_eq!(rec["request_id"], request_id.as_str());
    assert_eq!(rec["model"], "up/ok");
    assert_eq!(rec["user"], "u-1");
    assert_eq!(rec["metadata"]["plan"], "pro");
    assert_eq!(rec["prompt"][0]["content"], "ping");
    assert_eq!(rec["completion"], "Hello from ok! You said: ping");
    assert!(rec["prompt_tokens"].as_u64().unwrap() > 0);
    let line = serde_json::to_string(rec).unwrap();
    assert!(
        !line.contains("sk-upstream-secret-123"),
        "upstream keys never reach logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_429_5xx_connect_error_malformed_and_timeout() {
    let h = Harness::start().await;
    for first in [
        "up/429",
        "up/500",
        "up/503",
        "dead/model",
        "up/malformed",
        "up/hang-headers",
    ] {
        let (status, _, v) = h
            .chat(json!({"model": first, "models": ["up/second"], "messages": user("x")}))
            .await;
        assert_eq!(status, 200, "{first}: {v}");
        assert_eq!(v["model"], "up/second");
        assert_eq!(
            chain(&v["metadata"]),
            vec![(first.to_string(), false), ("up/second".to_string(), true)]
        );
        let a = &v["metadata"]["attempts"][0];
        let expected_kind = match first {
            "dead/model" => "connect",
            "up/malformed" => "malformed",
            "up/hang-headers" => "timeout",
            _ => "status",
        };
        assert_eq!(a["error_kind"], expected_kind, "{first}: {a}");
        if first.starts_with("up/4") || first.starts_with("up/5") {
            assert_eq!(a["status"], first[3..].parse::<u64>().unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_chain_walks_every_failure_kind_in_order() {
    let h = Harness::start().await;
    let (status, _, v) = h
        .chat(json!({"model": "router/chain", "messages": user("x")}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        chain(&v["metadata"]),
        vec![
            ("up/hang-headers".to_string(), false),
            ("up/429".to_string(), false),
            ("dead/model".to_string(), false),
            ("up/malformed".to_string(), false),
            ("up/ok".to_string(), true),
        ]
    );
    assert_eq!(v["metadata"]["routing"]["router"], "chain");
    let timeout_ms = v["metadata"]["attempts"][0]["duration_ms"]
        .as_f64()
        .unwrap();
    assert!(
        (280.0..1500.0).contains(&timeout_ms),
        "router timeout 300ms applied, took {timeout_ms}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_from_upstream_are_returned_not_retried() {
    let h = Harness::start().await;
    let (status, _, v) = h
        .chat(json!({"model": "up/400", "models": ["up/ok"], "messages": user("x")}))
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "upstream_rejected");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("scripted 400"));
    assert_eq!(
        v["error"]["attempts"].as_array().unwrap().len(),
        1,
        "no retry after a 400"
    );
    assert_eq!(h.mock.bodies().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_attempts_failing_gives_502_with_the_chain_and_timeouts_give_504() {
    let h = Harness::start().await;
    let (status, headers, v) = h
        .chat(json!({"model": "up/429", "models": ["up/503"], "messages": user("x")}))
        .await;
    assert_eq!(status, 502, "{v}");
    assert!(headers.contains_key("x-switchyard-request-id"));
    assert_eq!(v["error"]["type"], "upstream_error");
    assert_eq!(v["error"]["code"], "all_attempts_failed");
    let attempts = v["error"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1]["status"], 503);
    let (status, _, v) = h
        .chat(json!({"model": "up/hang-ttft", "stream": true, "messages": user("x")}))
        .await;
    assert_eq!(status, 504, "{v}");
    assert_eq!(v["error"]["attempts"][0]["error_kind"], "ttft_timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_failover_before_first_token_sends_no_bytes_of_the_failed_model() {
    let h = Harness::start().await;
    for first in ["up/hang-ttft", "up/429", "up/malformed", "up/hang-headers"] {
        let r = h
            .post(
                "/v1/chat/completions",
                json!({"model": first, "models": ["up/second"], "stream": true,
                   "stream_options": {"include_usage": true}, "messages": user("stream me")}),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        assert_eq!(r.headers()["x-switchyard-model"], "up/second");
        let events = sse(&r.text().await.unwrap());
        assert_eq!(events.last().unwrap().1, "[DONE]");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(&e.1).unwrap())
            .collect();
        assert!(
            chunks.iter().all(|c| c["model"] == "up/second"),
            "{first}: only the serving model's chunks"
        );
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello from ok-second! You said: stream me");
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0);
        let meta = &last["metadata"];
        assert_eq!(
            chain(meta),
            vec![(first.to_string(), false), ("up/second".to_string(), true)]
        );
        assert!(meta["attempts"][1]["time_to_first_token_ms"]
            .as_f64()
            .is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_chunk_only_when_asked_but_metadata_always_last() {
    let h = Harness::start().await;
    let r = h
        .post(
            "/v1/chat/completions",
            json!({"model": "up/ok", "stream": true, "messages": user("x")}),
        )
        .await;
    let events = sse(&r.text().await.unwrap());
    let last: Value = serde_json::from_str(&events[events.len() - 2].1).unwrap();
    assert!(last.get("usage").is_none());
    assert_eq!(last["metadata"]["model"], "up/ok");
    // Switchyard always asks the upstream for usage, so logs and cost are exact.
    assert_eq!(h.mock.bodies()[0]["stream_options"]["include_usage"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_broken_after_bytes_ends_with_an_error_event_and_is_logged() {
    let h = Harness::start().await;
    let r = h
        .post(
            "/v1/chat/completions",
            json!({"model": "up/drop", "stream": true, "messages": user("x y z")}),
        )
        .await;
    // No model follows it in the chain, so nothing can rescue it (tests/python/test_failover.py
    // has the rescue).
    assert_eq!(
        r.status(),
        200,
        "committed after the first token: no failover"
    );
    let events = sse(&r.text().await.unwrap());
    assert!(
        events.iter().all(|e| e.1 != "[DONE]"),
        "never a quiet [DONE] after a break"
    );
    let last: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{last}");
    assert!(events.len() >= 3, "some content arrived before the break");
    let logs = h.stop_and_read_logs().await;
    assert_eq!(logs[0]["stream_interrupted"], true);
    assert!(logs[0]["error"]
        .as_str()
        .unwrap()
        .contains("stream interrupted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_api_keys_are_enforced() {
    let h = Harness::start_with(Options {
        server_extra: "api_keys_env = \"TEST_ROUTER_KEYS\"",
        ..Options::default()
    })
    .await;
    let (status, _, v) = h
        .chat(json!({"model": "up/ok", "messages": user("x")}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["type"], "authentication_error");
    let r = h
        .http
        .post(format!("{}/v1/chat/completions", h.base))
        .bearer_auth("wrong")
        .json(&json!({"model": "up/ok", "messages": user("x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for (name, value) in [
        ("authorization", "Bearer router-key-2"),
        ("x-api-key", "router-key-1"),
    ] {
        let r = h
            .http
            .post(format!("{}/v1/chat/completions", h.base))
            .header(name, value)
            .json(&json!({"model": "up/ok", "messages": user("x")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
    }
    let r = h
        .http
        .get(format!("{}/v1/models", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cel_routes_and_sticky_variants() {
    let h = Harness::start().await;
    let (_, _, v) = h
        .chat(json!({"model": "router/ab", "metadata": {"plan": "free"}, "messages": user("x")}))
        .await;
    assert_eq!(v["model"], "mock/fast");
    assert_eq!(v["metadata"]["routing"]["route"], "free");
    let mut seen = std::collections::HashSet::new();
    for u in 0..40 {
        let user_id = format!("user-{u}");
        let (_, _, first) = h
            .chat(json!({"model": "router/ab", "user": user_id, "metadata": {"plan": "pro"}, "messages": user("x")}))
            .await;
        for _ in 0..2 {
            let (_, _, again) = h
                .chat(json!({"model": "router/ab", "user": user_id, "metadata": {"plan": "pro"}, "messages": user("y")}))
                .await;
            assert_eq!(
                again["metadata"]["routing"]["variant"],
                first["metadata"]["routing"]["variant"]
            );
        }
        seen.insert(
            first["metadata"]["routing"]["variant"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(seen.len(), 2, "both variants are used across users");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_health_and_metrics_endpoints() {
    let h = Harness::start().await;
    let models: Value = h.get_json("/v1/models").await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"up/ok") && ids.contains(&"router/ab") && ids.contains(&"auto"));
    let health: Value = h.get_json("/healthz").await;
    assert_eq!(health["status"], "ok");
    h.chat(json!({"model": "up/429", "models": ["up/ok"], "messages": user("x")}))
        .await;
    let m = h.metrics().await;
    assert!(
        m.contains("switchyard_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(m.contains("switchyard_failovers_total{model=\"up/429\"} 1"));
    assert!(m.contains("switchyard_upstream_attempts_total{model=\"up/ok\",outcome=\"success\"} 1"));
    assert!(m.contains("switchyard_request_duration_seconds_count{model=\"up/ok\"} 1"));
    assert!(m.contains("switchyard_tokens_total{model=\"up/ok\",kind=\"prompt\"}"));
    assert!(m.contains("switchyard_cost_usd_total{model=\"up/ok\"}"));
    assert!(!m.contains("sk-upstream-secret-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logging_can_be_turned_off() {
    let h = Harness::start_with(Options {
        log_text: false,
        ..Options::default()
    })
    .await;
    h.chat(json!({"model": "up/ok", "messages": user("secret prompt text")}))
        .await;
    let logs = h.stop_and_read_logs().await;
    let line = serde_json::to_string(&logs[0]).unwrap();
    assert!(!line.contains("secret prompt text"), "{line}");
    assert!(logs[0].get("prompt").is_none() && logs[0].get("completion").is_none());
    assert!(logs[0]["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_drains_in_flight_streams_and_flushes_every_log_record() {
    let h = Harness::start().await;
    let base = h.base.clone();
    // Slow streams from the in-process mock provider are in flight when the stop begins.
    let mut inflight = Vec::new();
    for i in 0..5 {
        let http = h.http.clone();
        let url = format!("{base}/v1/chat/completions");
        inflight.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .json(&json!({"model": "mock/slow", "stream": true, "messages": user(&format!("in flight {i}"))}))
                .send()
                .await
                .unwrap();
            r.text().await.unwrap()
        }));
    }
    for i in 0..20 {
        h.chat(json!({"model": "up/ok", "messages": user(&format!("n{i}"))}))
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let logs = h.stop_and_read_logs().await;
    for t in inflight {
        let body = t.await.unwrap();
        assert!(
            body.trim_end().ends_with("data: [DONE]"),
            "stream finished: {body}"
        );
    }
    assert_eq!(logs.len(), 25, "nothing logged is lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_validated_stored_durably_and_idempotent_per_source() {
    let h = Harness::start().await;
    let (_, headers, _) = h
        .chat(json!({"model": "up/429", "models": ["up/ok"], "messages": user("x")}))
        .await;
    let id = headers["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let r = h
        .post(
            "/v1/feedback",
            json!({"request_id": id, "thumbs": "up", "comment": "great"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let fb: Value = r.json().await.unwrap();
    assert_eq!(
        (
            fb["model"].as_str(),
            fb["score"].as_f64(),
            fb["replaced"].as_bool()
        ),
        (Some("up/ok"), Some(1.0), Some(false))
    );
    let fb: Value = h
        .post("/v1/feedback", json!({"request_id": id, "score": 0.2}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fb["replaced"], true, "same (request_id, source): replaces");
    let r = h
        .post(
            "/v1/feedback",
            json!({"request_id": id, "score": 0.9, "source": "app", "model": "up/429"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // The judge's source is the server's own: a client cannot forge it.
    let r = h
        .post(
            "/v1/feedback",
            json!({"request_id": id, "score": 1.0, "source": "judge"}),
        )
        .await;
    assert_eq!(r.status(), 403);
    for (body, status, param) in [
        (
            json!({"request_id": "unknown-id", "score": 1}),
            404,
            "request_id",
        ),
        (json!({"request_id": id, "score": 2}), 400, "score"),
        (json!({"request_id": id, "thumbs": "meh"}), 400, "thumbs"),
        (
            json!({"request_id": id, "score": 1, "model": "mock/fast"}),
            400,
            "model",
        ),
    ] {
        let r = h.post("/v1/feedback", body).await;
        assert_eq!(r.status(), status);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["param"], param, "{e}");
    }
    // Stored before the reply, next to the request log.
    let stored = switchyard_learn::logfiles::read_records::<Value>(&h.log_dir, "feedback").unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1]["score"], 0.2);
    assert_eq!(stored[2]["source"], "app");
    let logs = h.stop_and_read_logs().await;
    assert_eq!(
        logs[0]["request_id"],
        id.as_str(),
        "feedback joins the log by request id"
    );
}
