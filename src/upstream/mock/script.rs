//! Scripted mock behaviour shared by the in-process `mock` provider and the HTTP mock upstream
//! (`switchyard mock-upstream`): what to answer, and how to misbehave.
//!
//! Answers are deterministic and respect the request: tools produce a tool call, JSON mode and
//! JSON schema produce JSON, `stop` cuts the text, `max_tokens` truncates with `finish_reason:
//! "length"`.

use crate::format::request::last_user_text;
use serde_json::{json, Map, Value};
use switchyard_learn::prompt::estimate_tokens;

/// What the mock will answer, before it is put into a wire format.
#[derive(Debug, Clone)]
pub struct MockAnswer {
    pub content: Option<String>,
    /// (id, name, arguments JSON text)
    pub tool_calls: Vec<(String, String, String)>,
    pub finish_reason: &'static str,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Computes the answer for an OpenAI-shaped request body.
pub fn answer(body: &Map<String, Value>, served_as: &str, reply: Option<&str>) -> MockAnswer {
    let messages = body.get("messages").and_then(Value::as_array);
    let prompt_tokens = messages
        .map(|m| estimate_tokens(&serde_json::to_string(m).unwrap_or_default()))
        .unwrap_or(0);
    let last_is_tool = messages
        .and_then(|m| m.last())
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("tool");
    let wants_tool = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
        && body.get("tool_choice").and_then(Value::as_str) != Some("none")
        && !last_is_tool;
    if wants_tool {
        let tools = body["tools"].as_array().cloned().unwrap_or_default();
        let chosen = match body.get("tool_choice") {
            Some(Value::Object(tc)) => tc
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .and_then(|n| tools.iter().find(|t| t["function"]["name"] == n))
                .unwrap_or(&tools[0]),
            _ => &tools[0],
        };
        let name = chosen["function"]["name"]
            .as_str()
            .unwrap_or("tool")
            .to_string();
        let args = sample_for_schema(&chosen["function"]["parameters"], &last_user_text(body));
        let args = serde_json::to_string(&args).unwrap_or_else(|_| "{}".into());
        let completion_tokens = estimate_tokens(&args) + 5;
        return MockAnswer {
            content: None,
            tool_calls: vec![(format!("call_mock_{}", short_hash(&args)), name, args)],
            finish_reason: "tool_calls",
            prompt_tokens,
            completion_tokens,
        };
    }

    let user = last_user_text(body);
    if let Some((sent, user, repeat)) = continuation(body) {
        // A rescue: the rest of the answer this mock would give, after what was sent (asked
        // without a prefill, it starts by repeating the last words, as models often do).
        let full = mock_text(served_as, &user, reply);
        let rest = full.strip_prefix(sent.as_str()).unwrap_or(&full);
        let skip = sent
            .chars()
            .count()
            .saturating_sub(if repeat { 6 } else { 0 });
        let again: String = sent.chars().skip(skip).collect();
        let text = format!("{again}{rest}");
        return MockAnswer {
            completion_tokens: text.split_inclusive(' ').count() as u64,
            content: Some(text),
            tool_calls: vec![],
            finish_reason: "stop",
            prompt_tokens,
        };
    }
    let mut text = match body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        Some("json_object") => json!({ "answer": mock_text(served_as, &user, reply) }).to_string(),
        Some("json_schema") => {
            let schema = &body["response_format"]["json_schema"]["schema"];
            sample_for_schema(schema, &mock_text(served_as, &user, reply)).to_string()
        }
        _ => mock_text(served_as, &user, reply),
    };
    let mut finish_reason = "stop";
    let stops: Vec<String> = match body.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
        _ => vec![],
    };
    if let Some(cut) = stops.iter().filter_map(|s| text.find(s.as_str())).min() {
        text.truncate(cut);
    }
    let limit = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64);
    if let Some(limit) = limit {
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        if words.len() as u64 > limit {
            text = words[..limit as usize].concat().trim_end().to_string();
            finish_reason = "length";
        }
    }
    let completion_tokens = text.split_inclusive(' ').count() as u64;
    MockAnswer {
        content: Some(text),
        tool_calls: vec![],
        finish_reason,
        prompt_tokens,
        completion_tokens,
    }
}

/// A request to continue an answer: the answer so far (a trailing assistant message, or one
/// followed by the rescue's instruction), the user message it answers, and whether it came
/// with the instruction.
fn continuation(body: &Map<String, Value>) -> Option<(String, String, bool)> {
    let msgs = body.get("messages")?.as_array()?;
    let text = |m: &Value| crate::format::request::content_text(&m["content"]);
    let (last, before) = msgs.split_last()?;
    let (sent, before, repeat) = if last["role"] == "assistant" {
        (text(last), before, false)
    } else if last["role"] == "user" && text(last) == crate::upstream::continuation::CONTINUE {
        let (prev, before) = before.split_last()?;
        (prev["role"] == "assistant").then_some(())?;
        (text(prev), before, true)
    } else {
        return None;
    };
    let user = before
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(text)?;
    Some((sent, user, repeat))
}

fn mock_text(served_as: &str, user: &str, reply: Option<&str>) -> String {
    if let Some(r) = reply {
        return r.to_string();
    }
    let user: String = user.chars().take(200).collect();
    format!("Hello from {served_as}! You said: {user}")
}

/// A value that fits a JSON schema: strings get `text`, numbers 1, booleans true.
fn sample_for_schema(schema: &Value, text: &str) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("object") | None if schema.get("properties").is_some() => {
            let mut out = Map::new();
            if let Some(props) = schema["properties"].as_object() {
                for (k, v) in props {
                    out.insert(k.clone(), sample_for_schema(v, text));
                }
            }
            Value::Object(out)
        }
        Some("object") | None => json!({}),
        Some("string") => match schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            Some(first) => first.clone(),
            None => Value::String(text.to_string()),
        },
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([sample_for_schema(&schema["items"], text)]),
        Some(_) => Value::Null,
    }
}

fn short_hash(s: &str) -> String {
    format!("{:08x}", switchyard_learn::hash::stable_hash(s) as u32)
}

/// The answer as an OpenAI chat completion.
pub fn completion_json(a: &MockAnswer, model: &str, id: &str, created: u64) -> Value {
    let tool_calls: Vec<Value> = a
        .tool_calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    let mut message = json!({"role": "assistant", "content": a.content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": a.finish_reason, "logprobs": null}],
        "usage": usage_json(a),
    })
}

fn usage_json(a: &MockAnswer) -> Value {
    json!({
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens,
        "total_tokens": a.prompt_tokens + a.completion_tokens,
    })
}

/// The answer as OpenAI stream chunks: role, one chunk per word (or the tool call in two
/// pieces), the finish chunk, and a usage chunk when `include_usage`.
pub fn chunks_json(
    a: &MockAnswer,
    model: &str,
    id: &str,
    created: u64,
    include_usage: bool,
) -> Vec<Value> {
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        })
    };
    let mut out = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    if let Some(text) = &a.content {
        for word in text.split_inclusive(' ') {
            out.push(chunk(json!({"content": word}), None));
        }
    }
    for (i, (call_id, name, args)) in a.tool_calls.iter().enumerate() {
        out.push(chunk(
            json!({"tool_calls": [{"index": i, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
            None,
        ));
        let mid = args
            .char_indices()
            .nth(args.chars().count() / 2)
            .map(|(i, _)| i)
            .unwrap_or(0);
        for part in [&args[..mid], &args[mid..]] {
            out.push(chunk(
                json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}),
                None,
            ));
        }
    }
    out.push(chunk(json!({}), Some(a.finish_reason)));
    if include_usage {
        out.push(json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage_json(a),
        }));
    }
    out
}

/// A deterministic embeddings answer (OpenAI shape): one unit vector per input, derived from
/// its text, `dimensions` long (default 16), as floats or base64 little-endian f32s.
pub fn embeddings_json(body: &Map<String, Value>, served_as: &str) -> Result<Value, String> {
    use base64::Engine;
    let inputs = crate::format::embeddings::inputs(body)?;
    let dims = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(16)
        .clamp(1, 4096) as usize;
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            tokens += estimate_tokens(text).max(1);
            let seed = switchyard_learn::hash::stable_hash(text);
            let raw: Vec<f32> = (0..dims)
                .map(|d| {
                    let h = switchyard_learn::hash::stable_hash(&format!("{seed}:{d}"));
                    (h % 2001) as f32 / 1000.0 - 1.0
                })
                .collect();
            let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            let v: Vec<f32> = raw.iter().map(|x| x / norm).collect();
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(json!({
        "object": "list", "data": data, "model": served_as,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn echoes_and_respects_max_tokens_and_stop() {
        let a = answer(
            &body(json!({"messages": [{"role": "user", "content": "one two three"}]})),
            "m",
            None,
        );
        assert_eq!(
            a.content.as_deref(),
            Some("Hello from m! You said: one two three")
        );
        let a = answer(
            &body(json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2})),
            "m",
            None,
        );
        assert_eq!(a.content.as_deref(), Some("Hello from"));
        assert_eq!(a.finish_reason, "length");
        let a = answer(
            &body(json!({"messages": [{"role": "user", "content": "x"}], "stop": ["!"]})),
            "m",
            None,
        );
        assert_eq!(a.content.as_deref(), Some("Hello from m"));
    }

    #[test]
    fn tools_and_json_schema() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}]);
        let a = answer(
            &body(json!({"messages": [{"role": "user", "content": "Paris"}], "tools": tools})),
            "m",
            None,
        );
        assert_eq!(a.finish_reason, "tool_calls");
        assert_eq!(a.tool_calls[0].1, "get_weather");
        let args: Value = serde_json::from_str(&a.tool_calls[0].2).unwrap();
        assert_eq!(args, json!({"city": "Paris", "days": 1}));
        let rf = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}});
        let a = answer(
            &body(json!({"messages": [{"role": "user", "content": "q"}], "response_format": rf})),
            "m",
            None,
        );
        assert_eq!(
            serde_json::from_str::<Value>(a.content.as_deref().unwrap()).unwrap(),
            json!({"ok": true})
        );
    }
}
