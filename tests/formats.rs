//! Between the formats: an OpenAI client in front of an Anthropic upstream and the other way
//! round (tools, streaming, failover), and the specific errors each format gives bad requests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

mod common;

use common::{chain, sse, user, Harness};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_to_anthropic_upstream_with_tools_streaming_and_not() {
    let h = Harness::start().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let (status, _, v) = h
        .chat(json!({"model": "anth/claude", "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "Paris"}],
                     "tools": tools, "max_tokens": 50, "stop": ["END"]}))
        .await;
    assert_eq!(status, 200, "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let rec = h.mock.recorded.lock().unwrap()[0].clone();
    assert_eq!(rec["path"], "/v1/messages");
    assert_eq!(rec["headers"]["x-api-key"], "sk-upstream-secret-123");
    assert_eq!(rec["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(rec["body"]["system"], "sys");
    assert_eq!(rec["body"]["max_tokens"], 50);
    assert_eq!(rec["body"]["stop_sequences"], json!(["END"]));
    assert_eq!(
        rec["body"]["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );

    let r = h
        .post("/v1/chat/completions", json!({"model": "anth/claude", "stream": true, "tools": tools, "messages": user("Oslo")}))
        .await;
    let events = sse(&r.text().await.unwrap());
    let chunks: Vec<Value> = events
        .iter()
        .filter(|e| e.1 != "[DONE]")
        .map(|e| serde_json::from_str(&e.1).unwrap())
        .collect();
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "Oslo"})
    );
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_client_to_openai_upstream_and_failover_from_anthropic_429() {
    let h = Harness::start().await;
    let r = h
        .post("/v1/messages", json!({"model": "anth/429", "models": ["up/ok"], "max_tokens": 100, "system": "be nice",
               "messages": [{"role": "user", "content": [{"type": "text", "text": "bonjour"}]}], "metadata": {"user_id": "u9"}}))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "up/ok");
    assert_eq!(v["content"][0]["text"], "Hello from ok! You said: bonjour");
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        chain(&v["metadata"]),
        vec![("anth/429".to_string(), false), ("up/ok".to_string(), true)]
    );
    let sent = h.mock.bodies().last().unwrap().clone();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "be nice"})
    );
    assert_eq!(sent["user"], "u9");

    let r = h
        .post("/v1/messages", json!({"model": "up/ok", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    let events = sse(&r.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|e| e.0.as_deref().unwrap()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(
        &names[names.len() - 2..],
        &["message_delta", "message_stop"]
    );
    let text: String = events
        .iter()
        .filter(|e| e.0.as_deref() == Some("content_block_delta"))
        .map(|e| {
            serde_json::from_str::<Value>(&e.1).unwrap()["delta"]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, "Hello from ok! You said: hi");
    let stop: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert_eq!(stop["metadata"]["model"], "up/ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_specific_openai_and_anthropic_errors() {
    let h = Harness::start().await;
    let r = h
        .http
        .post(format!("{}/v1/chat/completions", h.base))
        .header("content-type", "application/json")
        .body("{\"model\": \"up/ok\", \"messages\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_json");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"].as_object().unwrap().contains_key("param"));

    let (status, _, v) = h
        .chat(json!({"model": "nope/nothing", "messages": user("x")}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("up/ok"),
        "lists what exists"
    );

    let (status, _, v) = h
        .chat(json!({"model": "auto", "messages": user("x")}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], "auto_routing_unavailable");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("learned routing is not configured"));

    let (status, _, v) = h.chat(json!({"model": "up/ok", "messages": "hello"})).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "messages");

    let big = "x".repeat(70_000);
    let (status, _, v) = h
        .chat(json!({"model": "up/ok", "messages": user(&big)}))
        .await;
    assert_eq!(status, 413);
    assert_eq!(v["error"]["code"], "request_too_large");

    let r = h.post("/v1/messages", json!({"model": "missing", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    assert_eq!(h.mock.bodies().len(), 0, "nothing reached the upstream");

    let logs = h.stop_and_read_logs().await;
    let statuses: Vec<u64> = logs.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(
        logs.len(),
        6,
        "rejected requests are logged too: {statuses:?}"
    );
    assert!(logs.iter().all(|r| r["status"].as_u64().unwrap() >= 400));
}
