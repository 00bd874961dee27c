//! A chat completion as a Responses API `response` object: the answer text as a `message`
//! item with an `output_text` part, each tool call as a `function_call` item, usage as
//! `input_tokens` / `output_tokens`, a length cut as `status: "incomplete"`.

use crate::format::request::SWITCHYARD_FIELDS;
use serde_json::{json, Value};

/// The request fields a response echoes back.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub instructions: Value,
    pub max_output_tokens: Value,
    pub temperature: Value,
    pub top_p: Value,
    pub tools: Value,
    pub tool_choice: Value,
    pub text: Value,
    pub user: Value,
    /// The request without Switchyard's fields, for upstreams that serve `/responses` natively.
    pub native: std::sync::Arc<serde_json::Map<String, Value>>,
}

impl Echo {
    /// What the response echoes of a Responses request body.
    pub fn of(req: &Value) -> Echo {
        let get = |k: &str| req.get(k).cloned().unwrap_or(Value::Null);
        Echo {
            instructions: get("instructions"),
            max_output_tokens: get("max_output_tokens"),
            temperature: get("temperature"),
            top_p: get("top_p"),
            tools: req.get("tools").cloned().unwrap_or(json!([])),
            tool_choice: req.get("tool_choice").cloned().unwrap_or(json!("auto")),
            text: req
                .get("text")
                .cloned()
                .unwrap_or(json!({"format": {"type": "text"}})),
            user: get("user"),
            native: std::sync::Arc::new(
                req.as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(k, _)| !SWITCHYARD_FIELDS.contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
        }
    }
}

/// A response object with `status`, `output` and `usage` (null while streaming).
pub fn envelope(
    id: &str,
    model: &str,
    created: u64,
    echo: &Echo,
    status: &str,
    output: Value,
    usage: Value,
) -> Value {
    json!({
        "id": id, "object": "response", "created_at": created, "status": status, "error": null,
        "incomplete_details": if status == "incomplete" { json!({"reason": "max_output_tokens"}) } else { Value::Null },
        "instructions": echo.instructions, "max_output_tokens": echo.max_output_tokens, "model": model,
        "output": output, "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null}, "store": false, "temperature": echo.temperature,
        "text": echo.text, "tool_choice": echo.tool_choice, "tools": echo.tools, "top_p": echo.top_p,
        "truncation": "disabled", "usage": usage, "user": echo.user,
    })
}

/// Usage in the Responses shape.
pub fn usage(input: u64, output: u64) -> Value {
    json!({
        "input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output,
    })
}

/// The `message` output item for a text.
pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

/// A `function_call` output item.
pub fn function_call_item(
    id: &str,
    call_id: &Value,
    name: &Value,
    arguments: &str,
    status: &str,
) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
           "arguments": arguments, "status": status})
}

/// The response for a whole chat completion; `id` is `resp_<request id>`.
pub fn from_openai(
    completion: &Value,
    request_id: &str,
    echo: &Echo,
    usage_tokens: (u64, u64),
) -> Value {
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut output = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        output.push(message_item(
            &format!("msg_{request_id}"),
            text,
            "completed",
        ));
    }
    for (i, tc) in message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        output.push(function_call_item(
            &format!("fc_{request_id}_{i}"),
            &tc["id"],
            &tc["function"]["name"],
            tc["function"]["arguments"].as_str().unwrap_or("{}"),
            "completed",
        ));
    }
    let status = if choice["finish_reason"] == "length" {
        "incomplete"
    } else {
        "completed"
    };
    envelope(
        &format!("resp_{request_id}"),
        completion["model"].as_str().unwrap_or(""),
        completion["created"]
            .as_u64()
            .unwrap_or_else(crate::clock::unix_secs),
        echo,
        status,
        Value::Array(output),
        usage(usage_tokens.0, usage_tokens.1),
    )
}

/// The text of a `response` object's `output_text` parts.
pub fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|item| item["content"].as_array().into_iter().flatten())
        .filter(|p| p["type"] == "output_text")
        .filter_map(|p| p["text"].as_str())
        .collect()
}

/// `(input_tokens, output_tokens)` of a `response` object.
pub fn usage_tokens(response: &Value) -> Option<(u64, u64)> {
    let u = &response["usage"];
    Some((u["input_tokens"].as_u64()?, u["output_tokens"].as_u64()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tool_calls_and_length_cuts() {
        let c = json!({"model": "m/x", "created": 5, "choices": [{"finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}]});
        let r = from_openai(&c, "abc", &Echo::default(), (10, 4));
        assert_eq!(r["id"], "resp_abc");
        assert_eq!(r["status"], "completed");
        assert_eq!(r["output"][0]["content"][0]["text"], "Checking.");
        assert_eq!(r["output"][1]["type"], "function_call");
        assert_eq!(r["output"][1]["call_id"], "call_1");
        assert_eq!(r["usage"]["total_tokens"], 14);
        let cut =
            json!({"choices": [{"finish_reason": "length", "message": {"content": "Once upon"}}]});
        let r = from_openai(&cut, "d", &Echo::default(), (1, 1));
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    }
}
