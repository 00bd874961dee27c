//! A Responses API request (`POST /v1/responses`) as a canonical chat-completions body:
//! `instructions` → a system message, `input` (text or items) → messages, function tools and
//! their calls and outputs, `text.format` → `response_format`, `max_output_tokens` →
//! `max_tokens`. What the translation cannot honour is a 400 that names it.

use crate::error::GatewayError;
use serde_json::{json, Map, Value};

/// Request fields of the Responses API that Switchyard does not serve, with the reason.
const UNSUPPORTED: [(&str, &str); 5] = [
    (
        "previous_response_id",
        "responses are not stored, so `previous_response_id` cannot be resolved; send the earlier turns in `input`",
    ),
    (
        "conversation",
        "conversations are not stored; send the earlier turns in `input`",
    ),
    ("background", "background responses are not supported"),
    ("prompt", "stored prompt templates are not supported"),
    (
        "include",
        "`include` is not supported (no stored outputs, files or reasoning content to include)",
    ),
];

/// Fields copied to the chat body as they are.
const SAME: [&str; 7] = [
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "metadata",
    "models",
    "router",
];

/// Translates a Responses body into a chat-completions body.
pub fn to_openai(value: Value, max_media_bytes: usize) -> Result<Value, GatewayError> {
    let Value::Object(req) = value else {
        return Err(GatewayError::invalid(
            "the request body must be a JSON object",
            "body",
        ));
    };
    for (field, why) in UNSUPPORTED {
        if req.get(field).is_some_and(|v| !v.is_null() && v != false) {
            return Err(GatewayError::invalid(why, field));
        }
    }
    let mut out = Map::new();
    if let Some(m) = req.get("model") {
        out.insert("model".into(), m.clone());
    }
    for f in SAME {
        if let Some(v) = req.get(f) {
            out.insert(f.into(), v.clone());
        }
    }
    let mut messages = Vec::new();
    match req.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => {
            return Err(GatewayError::invalid(
                "`instructions` must be a string",
                "instructions",
            ))
        }
    }
    match req.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                push_item(&mut messages, item, i, max_media_bytes)?;
            }
        }
        None | Some(Value::Null) => {
            return Err(GatewayError::invalid(
                "`input` is required: a string or a list of items",
                "input",
            ))
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                "`input` must be a string or a list of items",
                "input",
            ))
        }
    }
    if messages.is_empty() {
        return Err(GatewayError::invalid("`input` has no items", "input"));
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = req.get("max_output_tokens").filter(|v| !v.is_null()) {
        out.insert("max_tokens".into(), n.clone());
    }
    if let Some(effort) = req
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .filter(|v| !v.is_null())
    {
        out.insert("reasoning_effort".into(), effort.clone());
    }
    if let Some(tools) = req
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    {
        out.insert(
            "tools".into(),
            Value::Array(
                tools
                    .iter()
                    .enumerate()
                    .map(|(i, t)| tool(t, i))
                    .collect::<Result<_, _>>()?,
            ),
        );
    }
    if let Some(choice) = req.get("tool_choice").filter(|v| !v.is_null()) {
        out.insert("tool_choice".into(), tool_choice(choice)?);
    }
    if let Some(format) = req
        .get("text")
        .and_then(|t| t.get("format"))
        .filter(|v| !v.is_null())
    {
        if let Some(rf) = response_format(format)? {
            out.insert("response_format".into(), rf);
        }
    }
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if stream {
        out.insert("stream".into(), json!(true));
        // The final `response.completed` event carries usage.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(out))
}

/// One input item as chat messages (function calls join the assistant message before them).
fn push_item(
    messages: &mut Vec<Value>,
    item: &Value,
    i: usize,
    max_media_bytes: usize,
) -> Result<(), GatewayError> {
    let param = format!("input[{i}]");
    let kind = item.get("type").and_then(Value::as_str);
    match kind {
        None | Some("message") => {
            let role = item.get("role").and_then(Value::as_str).unwrap_or("");
            let role = match role {
                "user" | "assistant" | "system" => role,
                "developer" => "system",
                other => {
                    return Err(GatewayError::invalid(
                        format!("{param}.role must be user, assistant, system or developer, got {other:?}"),
                        &param,
                    ))
                }
            };
            let content = content(&item["content"], &param, max_media_bytes)?;
            messages.push(json!({"role": role, "content": content}));
        }
        Some("function_call") => {
            let call = json!({
                "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {"name": item["name"], "arguments": item.get("arguments").cloned().unwrap_or(json!("{}"))},
            });
            if !item["call_id"].is_string() || !item["name"].is_string() {
                return Err(GatewayError::invalid(
                    format!("{param}: a function_call item needs `call_id` and `name`"),
                    &param,
                ));
            }
            match messages.last_mut() {
                Some(last) if last["role"] == "assistant" && last["tool_calls"].is_array() => {
                    if let Some(calls) = last["tool_calls"].as_array_mut() {
                        calls.push(call);
                    }
                }
                _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        Some("function_call_output") => {
            let Some(call_id) = item.get("call_id").and_then(Value::as_str) else {
                return Err(GatewayError::invalid(
                    format!("{param}: a function_call_output item needs `call_id`"),
                    &param,
                ));
            };
            let output = match &item["output"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
        }
        // Reasoning items of an earlier turn: nothing a chat upstream can take back.
        Some("reasoning") => {}
        Some(other) => {
            return Err(GatewayError::invalid(
                format!(
                    "{param}: input items of type {other:?} are not supported; use message, function_call or function_call_output"
                ),
                &param,
            ))
        }
    }
    Ok(())
}

/// Refuses an inline part of `bytes` (decoded) over `max`, at the client's path `at`.
fn media_size(bytes: usize, at: &str, max: usize) -> Result<(), GatewayError> {
    if bytes > max {
        return Err(crate::format::request::media_too_large(at, bytes, max));
    }
    Ok(())
}

/// A message's content: text, or parts (`input_text`, `output_text`, `input_image`,
/// `input_audio`) as chat content parts.
fn content(c: &Value, param: &str, max_media_bytes: usize) -> Result<Value, GatewayError> {
    let parts = match c {
        Value::String(s) => return Ok(json!(s)),
        Value::Array(parts) => parts,
        _ => {
            return Err(GatewayError::invalid(
                format!("{param}.content must be a string or a list of content parts"),
                param,
            ))
        }
    };
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let at = format!("{param}.content[{j}]");
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                out.push(json!({"type": "text", "text": p["text"]}))
            }
            Some("input_image") => {
                let Some(url) = p.get("image_url").and_then(Value::as_str) else {
                    return Err(GatewayError::invalid(
                        format!("{at}: an input_image part needs `image_url` (an https or data URL); file ids are not supported"),
                        &at,
                    ));
                };
                // Checked here, so that an error names the client's own path.
                if let Some(bytes) = crate::format::request::image_url(url, &at, "image_url")? {
                    media_size(bytes, &at, max_media_bytes)?;
                }
                let mut image = json!({"url": url});
                if let Some(d) = p.get("detail").filter(|d| d.is_string()) {
                    image["detail"] = d.clone();
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            Some("input_audio") => {
                let data = p["input_audio"]["data"].as_str().unwrap_or_default();
                media_size(data.len() / 4 * 3, &at, max_media_bytes)?;
                out.push(json!({"type": "input_audio", "input_audio": p["input_audio"]}))
            }
            Some("refusal") => out.push(json!({"type": "text", "text": p["refusal"]})),
            other => {
                return Err(GatewayError::invalid(
                    format!(
                        "{at}: content parts of type {} are not supported; use input_text, input_image or input_audio",
                        other.map_or("(none)".to_string(), |t| format!("{t:?}"))
                    ),
                    &at,
                ))
            }
        }
    }
    Ok(Value::Array(out))
}

/// The fields of `v` named in `keys` that are present and not null.
fn non_null(v: &Value, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| {
            v.get(*k)
                .filter(|x| !x.is_null())
                .map(|x| (k.to_string(), x.clone()))
        })
        .collect()
}

/// A Responses tool (flat) as a chat tool; built-in tools are refused by name.
fn tool(t: &Value, i: usize) -> Result<Value, GatewayError> {
    let param = format!("tools[{i}]");
    match t.get("type").and_then(Value::as_str) {
        Some("function") => {
            let f = non_null(t, &["name", "description", "parameters", "strict"]);
            if !f.contains_key("name") {
                return Err(GatewayError::invalid(format!("{param}: a function tool needs `name`"), &param));
            }
            Ok(json!({"type": "function", "function": f}))
        }
        other => Err(GatewayError::invalid(
            format!(
                "{param}: tools of type {} are not supported (built-in tools run on OpenAI's side); use function tools",
                other.map_or("(none)".to_string(), |t| format!("{t:?}"))
            ),
            &param,
        )),
    }
}

fn tool_choice(c: &Value) -> Result<Value, GatewayError> {
    match c {
        Value::String(s) if ["auto", "none", "required"].contains(&s.as_str()) => Ok(c.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            Ok(json!({"type": "function", "function": {"name": o.get("name")}}))
        }
        _ => Err(GatewayError::invalid(
            "`tool_choice` must be auto, none, required or {\"type\": \"function\", \"name\": ...}",
            "tool_choice",
        )),
    }
}

/// `text.format` as `response_format` (`None` for plain text).
fn response_format(f: &Value) -> Result<Option<Value>, GatewayError> {
    match f.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let schema = non_null(f, &["name", "schema", "strict", "description"]);
            if !schema.contains_key("schema") {
                return Err(GatewayError::invalid(
                    "`text.format` of type json_schema needs `schema`",
                    "text.format",
                ));
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(GatewayError::invalid(
            "`text.format.type` must be text, json_object or json_schema",
            "text.format",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_instructions_items_tools_and_format() {
        let body = to_openai(
            json!({
            "model": "auto", "instructions": "Be brief.", "max_output_tokens": 50, "user": "u1",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "c2", "output": {"h": 9}},
            ],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
            "stream": true,
            }),
            usize::MAX,
        )
        .unwrap();
        let m = body["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(
            m[1]["content"][1]["image_url"],
            json!({"url": "data:image/png;base64,AAAA", "detail": "low"})
        );
        assert_eq!(
            m[2]["tool_calls"].as_array().unwrap().len(),
            2,
            "consecutive calls: one assistant turn"
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
        );
        assert_eq!(m[4]["content"], "{\"h\":9}");
        assert_eq!(body["max_tokens"], 50);
        assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(body["tool_choice"]["function"]["name"], "get_weather");
        assert_eq!(body["response_format"]["json_schema"]["name"], "w");
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["user"], "u1");
    }

    #[test]
    fn refuses_what_it_cannot_serve_by_name() {
        let param = |v: Value| to_openai(v, usize::MAX).unwrap_err().param;
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}))
                .as_deref(),
            Some("previous_response_id")
        );
        assert_eq!(
            param(json!({"model": "m", "input": [{"type": "file_search_call"}]})).as_deref(),
            Some("input[0]")
        );
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}))
                .as_deref(),
            Some("tools[0]")
        );
        assert_eq!(
            param(json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]})).as_deref(),
            Some("input[0].content[0]")
        );
        assert_eq!(param(json!({"model": "m"})).as_deref(), Some("input"));
        // A bad image URL names the client's path, not the chat message it becomes.
        let e = to_openai(json!({"model": "m", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"role": "user", "content": [{"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": "ftp://x/y.png"}]}]}), usize::MAX)
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input[1].content[1]"));
        assert!(
            e.message.starts_with("input[1].content[1]: `image_url`"),
            "{}",
            e.message
        );
        assert_eq!(
            param(json!({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}))
                .as_deref(),
            Some("text.format")
        );
        // `store: false` and `background: false` are fine
        assert!(to_openai(
            json!({"model": "m", "input": "hi", "store": false, "background": false}),
            usize::MAX
        )
        .is_ok());
        // So does an inline image or audio part over server.max_media_bytes.
        let big = format!("data:image/png;base64,{}", "A".repeat(4000));
        for part in [
            json!({"type": "input_image", "image_url": big}),
            json!({"type": "input_audio", "input_audio": {"data": "A".repeat(4000), "format": "wav"}}),
        ] {
            let req = json!({"model": "m", "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "look"}, part]}]});
            let e = to_openai(req.clone(), 1000).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("input[0].content[1]"));
            assert!(
                e.message.contains("server.max_media_bytes"),
                "{}",
                e.message
            );
            assert!(to_openai(req, 10_000).is_ok());
        }
    }
}
