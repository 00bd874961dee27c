//! Response translation: Anthropic message ↔ OpenAI chat completion.

use super::{finish_reason, stop_reason};
use crate::error::{FailureKind, UpstreamError};
use serde_json::{json, Value};

/// An Anthropic message → an OpenAI chat completion (provider side).
pub fn to_openai(msg: &Value, created: u64) -> Result<Value, UpstreamError> {
    let blocks = msg
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            UpstreamError::new(
                FailureKind::Malformed,
                "Anthropic response has no `content` list",
            )
        })?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or("")),
            Some("tool_use") => tool_calls.push(json!({
                "id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()},
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let input = msg["usage"]["input_tokens"].as_u64().unwrap_or(0);
    let output = msg["usage"]["output_tokens"].as_u64().unwrap_or(0);
    Ok(json!({
        "id": msg["id"], "object": "chat.completion", "created": created, "model": msg["model"],
        "choices": [{"index": 0, "message": message, "logprobs": null,
                     "finish_reason": finish_reason(msg["stop_reason"].as_str().unwrap_or("end_turn"))}],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
    }))
}

/// An OpenAI chat completion → an Anthropic message (client side of `/v1/messages`).
pub fn from_openai(c: &Value, model: &str) -> Value {
    let choice = &c["choices"][0];
    let msg = &choice["message"];
    let mut content = Vec::new();
    if let Some(t) = msg
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": t}));
    }
    for tc in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let args = tc["function"]["arguments"].as_str().unwrap_or("{}");
        content.push(json!({
            "type": "tool_use", "id": tc["id"], "name": tc["function"]["name"],
            "input": serde_json::from_str::<Value>(args).unwrap_or(json!({})),
        }));
    }
    let id = c["id"].as_str().unwrap_or("");
    json!({
        "id": format!("msg_{}", id.trim_start_matches("chatcmpl-")),
        "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": {
            "input_tokens": c["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
            "output_tokens": c["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_use_round_trip() {
        let anth = json!({"id": "msg_1", "model": "claude", "stop_reason": "tool_use",
            "content": [{"type": "text", "text": "ok"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
            "usage": {"input_tokens": 5, "output_tokens": 7}});
        let oai = to_openai(&anth, 0).unwrap();
        assert_eq!(oai["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            oai["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(oai["usage"]["total_tokens"], 12);
        let back = from_openai(&oai, "anthropic/claude");
        assert_eq!(back["content"], anth["content"]);
        assert_eq!(back["stop_reason"], "tool_use");
        assert_eq!(back["usage"], anth["usage"]);
    }
}
