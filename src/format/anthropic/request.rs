//! Request translation: Anthropic Messages ↔ OpenAI chat completions.

use crate::error::GatewayError;
use crate::format::request::content_text;
use serde_json::{json, Map, Value};

/// An Anthropic Messages request → an OpenAI chat body (client side of `/v1/messages`).
/// `metadata.user_id` becomes `user`; other metadata keys stay in `metadata` for routing.
pub fn to_openai(req: Value) -> Result<Value, GatewayError> {
    let Value::Object(mut req) = req else {
        return Err(GatewayError::invalid(
            "the request body must be a JSON object",
            "body",
        ));
    };
    let mut messages = Vec::new();
    match req.remove("system") {
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let text = content_text(&Value::Array(blocks));
            messages.push(json!({"role": "system", "content": text}));
        }
        _ => {}
    }
    let Some(Value::Array(msgs)) = req.remove("messages") else {
        return Err(GatewayError::invalid(
            "`messages` is required and must be a list",
            "messages",
        ));
    };
    for (i, m) in msgs.into_iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(GatewayError::invalid(
                format!("messages[{i}].role must be \"user\" or \"assistant\""),
                &format!("messages[{i}].role"),
            ));
        }
        match &m["content"] {
            Value::String(s) => messages.push(json!({"role": role, "content": s})),
            Value::Array(blocks) => {
                convert_blocks(role, blocks, &mut messages).map_err(|(j, m)| {
                    let at = format!("messages[{i}].content[{j}]");
                    GatewayError::invalid(format!("{at}: {m}"), &at)
                })?
            }
            _ => {
                return Err(GatewayError::invalid(
                    format!("messages[{i}].content must be a string or a list of content blocks"),
                    &format!("messages[{i}].content"),
                ))
            }
        }
    }
    let mut out = Map::new();
    if let Some(model) = req.remove("model") {
        out.insert("model".into(), model);
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(mt) = req.remove("max_tokens") {
        out.insert("max_tokens".into(), mt);
    }
    if let Some(stop) = req.remove("stop_sequences") {
        out.insert("stop".into(), stop);
    }
    for key in ["temperature", "top_p", "stream", "models", "user"] {
        if let Some(v) = req.remove(key) {
            out.insert(key.into(), v);
        }
    }
    if let Some(Value::Object(mut meta)) = req.remove("metadata") {
        if let Some(Value::String(uid)) = meta.remove("user_id") {
            out.entry("user").or_insert(Value::String(uid));
        }
        out.insert("metadata".into(), Value::Object(meta));
    }
    if let Some(Value::Array(tools)) = req.remove("tools") {
        let tools: Vec<Value> = tools
            .into_iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t["name"], "description": t.get("description").cloned().unwrap_or(Value::Null),
                    "parameters": t.get("input_schema").cloned().unwrap_or(json!({"type": "object"})),
                }})
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(tc) = req.remove("tool_choice") {
        let choice = match tc.get("type").and_then(Value::as_str) {
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function", "function": {"name": tc["name"]}}),
            _ => json!("auto"),
        };
        out.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(out))
}

/// Anthropic content blocks → OpenAI message(s); an unsupported block is `(its index, why)`.
fn convert_blocks(
    role: &str,
    blocks: &[Value],
    out: &mut Vec<Value>,
) -> Result<(), (usize, String)> {
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(json!({"type": "text", "text": b["text"]})),
            Some("image") => {
                let src = &b["source"];
                let url = match src.get("type").and_then(Value::as_str) {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        src["media_type"].as_str().unwrap_or("image/png"),
                        src["data"].as_str().unwrap_or("")
                    ),
                    Some("url") => src["url"].as_str().unwrap_or("").to_string(),
                    other => {
                        return Err((
                            j,
                            format!("image sources of type {other:?} are not supported; use base64 or url"),
                        ))
                    }
                };
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("tool_use") => tool_calls.push(json!({
                "id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()},
            })),
            Some("tool_result") => {
                let content = match &b["content"] {
                    Value::String(s) => s.clone(),
                    other => content_text(other),
                };
                out.push(
                    json!({"role": "tool", "tool_call_id": b["tool_use_id"], "content": content}),
                );
            }
            // An earlier turn's reasoning: no chat-completions equivalent to carry it.
            Some("thinking" | "redacted_thinking") => {}
            other => {
                return Err((
                    j,
                    format!(
                        "content blocks of type {} are not supported; use text, image, tool_use or tool_result",
                        other.map_or("(none)".to_string(), |t| format!("{t:?}"))
                    ),
                ))
            }
        }
    }
    if parts.is_empty() && tool_calls.is_empty() {
        return Ok(());
    }
    let all_text = parts.iter().all(|p| p["type"] == "text");
    let content = if parts.is_empty() {
        Value::Null
    } else if all_text {
        Value::String(content_text(&Value::Array(parts)))
    } else {
        Value::Array(parts)
    };
    let mut msg = json!({"role": role, "content": content});
    if !tool_calls.is_empty() {
        msg["tool_calls"] = Value::Array(tool_calls);
    }
    out.push(msg);
    Ok(())
}

/// A canonical OpenAI body → an Anthropic Messages request (provider side).
/// `response_format` has no Anthropic equivalent: it becomes a system instruction. A part
/// Anthropic cannot take (audio, files) is an error that names it.
pub fn from_openai(
    body: &Map<String, Value>,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Value, String> {
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    let empty = Vec::new();
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        let (i, m) = m;
        let role = m["role"].as_str().unwrap_or("user");
        let blocks: Vec<Value> = match role {
            "system" | "developer" => {
                system.push(content_text(&m["content"]));
                continue;
            }
            "tool" | "function" => vec![json!({
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id").cloned().unwrap_or(Value::Null),
                "content": content_text(&m["content"]),
            })],
            _ => {
                let mut blocks = content_blocks(&m["content"])
                    .map_err(|(j, why)| format!("messages[{i}].content[{j}]: {why}"))?;
                for tc in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .unwrap_or(&empty)
                {
                    let args = tc["function"]["arguments"].as_str().unwrap_or("{}");
                    blocks.push(json!({
                        "type": "tool_use", "id": tc["id"], "name": tc["function"]["name"],
                        "input": serde_json::from_str::<Value>(args).unwrap_or(json!({})),
                    }));
                }
                blocks
            }
        };
        let role = if role == "assistant" {
            "assistant"
        } else {
            "user"
        };
        // Anthropic wants alternating roles: merge consecutive messages of one role.
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(arr) = last["content"].as_array_mut() {
                    arr.extend(blocks);
                }
            }
            _ => messages.push(json!({"role": role, "content": blocks})),
        }
    }
    match body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        Some("json_object") => {
            system.push("Respond with a single JSON object and nothing else.".into())
        }
        Some("json_schema") => system.push(format!(
            "Respond with a single JSON object that matches this JSON schema, and nothing else: {}",
            body["response_format"]["json_schema"]["schema"]
        )),
        _ => {}
    }
    let max_tokens = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(default_max_tokens);
    let mut out = json!({"model": upstream_model, "messages": messages, "max_tokens": max_tokens});
    if !system.is_empty() {
        out["system"] = Value::String(system.join("\n\n"));
    }
    for key in ["temperature", "top_p", "stream"] {
        if let Some(v) = body.get(key) {
            out[key] = v.clone();
        }
    }
    match body.get("stop") {
        Some(Value::String(s)) => out["stop_sequences"] = json!([s]),
        Some(Value::Array(a)) => out["stop_sequences"] = Value::Array(a.clone()),
        _ => {}
    }
    if let Some(Value::String(u)) = body.get("user") {
        out["metadata"] = json!({"user_id": u});
    }
    if let Some(Value::Array(tools)) = body.get("tools") {
        out["tools"] = Value::Array(
            tools
                .iter()
                .map(|t| {
                    let f = &t["function"];
                    let mut tool = json!({"name": f["name"], "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object"}))});
                    if let Some(d) = f.get("description").filter(|d| !d.is_null()) {
                        tool["description"] = d.clone();
                    }
                    tool
                })
                .collect(),
        );
    }
    if let Some(tc) = body.get("tool_choice") {
        let choice = match tc {
            Value::String(s) if s == "required" => Some(json!({"type": "any"})),
            Value::String(s) if s == "none" => Some(json!({"type": "none"})),
            Value::String(_) => Some(json!({"type": "auto"})),
            Value::Object(o) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|n| json!({"type": "tool", "name": n})),
            _ => None,
        };
        if let Some(c) = choice {
            out["tool_choice"] = c;
        }
    }
    Ok(out)
}

/// OpenAI message content → Anthropic content blocks; a part Anthropic cannot take is
/// `(its index, why)`.
fn content_blocks(content: &Value) -> Result<Vec<Value>, (usize, String)> {
    match content {
        Value::String(s) if s.is_empty() => Ok(vec![]),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p.get("type").and_then(Value::as_str) {
                Some("text") => Ok(json!({"type": "text", "text": p["text"]})),
                Some("image_url") => {
                    let url = p["image_url"]["url"].as_str().unwrap_or("");
                    Ok(match url.strip_prefix("data:").and_then(|r| r.split_once(";base64,")) {
                        Some((media, data)) => json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}),
                        None => json!({"type": "image", "source": {"type": "url", "url": url}}),
                    })
                }
                other => Err((
                    j,
                    format!(
                        "Anthropic models take text and images; parts of type {} cannot be sent to them",
                        other.map_or("(none)".to_string(), |t| format!("{t:?}"))
                    ),
                )),
            })
            .collect(),
        _ => Ok(vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_tools_round_trip_through_openai() {
        let anth = json!({
            "model": "m", "max_tokens": 100, "system": "be brief", "stop_sequences": ["END"],
            "metadata": {"user_id": "u1", "plan": "free"},
            "tools": [{"name": "get_weather", "description": "w", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "messages": [
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": [{"type": "text", "text": "checking"}, {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]},
            ],
        });
        let oai = to_openai(anth).unwrap();
        assert_eq!(oai["user"], "u1");
        assert_eq!(oai["metadata"], json!({"plan": "free"}));
        assert_eq!(oai["stop"], json!(["END"]));
        assert_eq!(
            oai["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(
            oai["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(
            oai["messages"][3],
            json!({"role": "tool", "tool_call_id": "t1", "content": "sunny"})
        );
        assert_eq!(oai["tool_choice"]["function"]["name"], "get_weather");

        let back = from_openai(oai.as_object().unwrap(), "claude", 4096).unwrap();
        assert_eq!(back["system"], "be brief");
        assert_eq!(back["max_tokens"], 100);
        assert_eq!(back["stop_sequences"], json!(["END"]));
        assert_eq!(
            back["messages"][1]["content"][1]["input"],
            json!({"city": "Paris"})
        );
        assert_eq!(back["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(
            back["tools"][0]["input_schema"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(
            back["tool_choice"],
            json!({"type": "tool", "name": "get_weather"})
        );
    }
}
