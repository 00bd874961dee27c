//! Stream translation: Anthropic stream events ↔ OpenAI chat completion chunks.

use super::{finish_reason, stop_reason};
use crate::error::{FailureKind, UpstreamError};
use serde_json::{json, Value};

/// Turns Anthropic stream events into OpenAI chunks (provider side).
#[derive(Default)]
pub struct ToOpenAi {
    id: String,
    model: String,
    created: u64,
    input_tokens: u64,
    output_tokens: u64,
    /// Anthropic block index → OpenAI tool call index.
    tool_index: Vec<(u64, usize)>,
    pub finished: bool,
}

impl ToOpenAi {
    pub fn new(created: u64) -> Self {
        ToOpenAi {
            created,
            ..Default::default()
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]})
    }

    /// Converts one event's JSON; returns the chunks it produces.
    pub fn event(&mut self, ev: &Value) -> Result<Vec<Value>, UpstreamError> {
        let out = match ev.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let m = &ev["message"];
                self.id = m["id"].as_str().unwrap_or("").to_string();
                self.model = m["model"].as_str().unwrap_or("").to_string();
                self.input_tokens = m["usage"]["input_tokens"].as_u64().unwrap_or(0);
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
            }
            Some("content_block_start") => {
                let b = &ev["content_block"];
                if b["type"] == "tool_use" {
                    let idx = self.tool_index.len();
                    self.tool_index
                        .push((ev["index"].as_u64().unwrap_or(0), idx));
                    vec![self.chunk(
                        json!({"tool_calls": [{"index": idx, "id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": ""}}]}),
                        None,
                    )]
                } else {
                    match b
                        .get("text")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                    {
                        Some(t) => vec![self.chunk(json!({"content": t}), None)],
                        None => vec![],
                    }
                }
            }
            Some("content_block_delta") => {
                let d = &ev["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => vec![self.chunk(json!({"content": d["text"]}), None)],
                    Some("input_json_delta") => {
                        let block = ev["index"].as_u64().unwrap_or(0);
                        let idx = self
                            .tool_index
                            .iter()
                            .find(|(b, _)| *b == block)
                            .map(|(_, i)| *i)
                            .unwrap_or(0);
                        vec![self.chunk(
                            json!({"tool_calls": [{"index": idx, "function": {"arguments": d["partial_json"]}}]}),
                            None,
                        )]
                    }
                    _ => vec![],
                }
            }
            Some("message_delta") => {
                if let Some(o) = ev["usage"]["output_tokens"].as_u64() {
                    self.output_tokens = o;
                }
                match ev["delta"]["stop_reason"].as_str() {
                    Some(r) => vec![self.chunk(json!({}), Some(finish_reason(r)))],
                    None => vec![],
                }
            }
            Some("message_stop") => {
                self.finished = true;
                vec![
                    json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                    "choices": [], "usage": {"prompt_tokens": self.input_tokens, "completion_tokens": self.output_tokens,
                    "total_tokens": self.input_tokens + self.output_tokens}}),
                ]
            }
            Some("error") => {
                return Err(UpstreamError::new(
                    FailureKind::StreamBroken,
                    format!("upstream sent an error event: {}", ev["error"]),
                ))
            }
            _ => vec![],
        };
        Ok(out)
    }
}

/// Turns OpenAI chunks into Anthropic events (client side of `/v1/messages`).
pub struct FromOpenAi {
    id: String,
    model: String,
    started: bool,
    /// The open content block: (index, is_tool).
    open: Option<(usize, bool)>,
    next_index: usize,
    stop_reason: &'static str,
}

impl FromOpenAi {
    pub fn new(id: &str, model: &str) -> Self {
        FromOpenAi {
            id: format!("msg_{id}"),
            model: model.to_string(),
            started: false,
            open: None,
            next_index: 0,
            stop_reason: "end_turn",
        }
    }

    fn start(&mut self, out: &mut Vec<(&'static str, Value)>) {
        if !self.started {
            self.started = true;
            out.push(("message_start", json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}}})));
        }
    }

    fn close(&mut self, out: &mut Vec<(&'static str, Value)>) {
        if let Some((i, _)) = self.open.take() {
            out.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": i}),
            ));
        }
    }

    fn open_block(
        &mut self,
        block: Value,
        is_tool: bool,
        out: &mut Vec<(&'static str, Value)>,
    ) -> usize {
        self.close(out);
        let i = self.next_index;
        self.next_index += 1;
        self.open = Some((i, is_tool));
        out.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": block}),
        ));
        i
    }

    /// Events for one OpenAI chunk.
    pub fn chunk(&mut self, c: &Value) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        self.start(&mut out);
        let Some(choice) = c["choices"].as_array().and_then(|a| a.first()) else {
            return out;
        };
        let delta = &choice["delta"];
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            let i = match self.open {
                Some((i, false)) => i,
                _ => self.open_block(json!({"type": "text", "text": ""}), false, &mut out),
            };
            out.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i,
                "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        for tc in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = tc.get("id").and_then(Value::as_str) {
                self.open_block(
                    json!({"type": "tool_use", "id": id, "name": tc["function"]["name"], "input": {}}),
                    true,
                    &mut out,
                );
            }
            if let (Some(args), Some((i, true))) = (tc["function"]["arguments"].as_str(), self.open)
            {
                if !args.is_empty() {
                    out.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": args}}),
                    ));
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop_reason = stop_reason(f);
        }
        out
    }

    /// The closing events: `message_delta` with usage, then `message_stop` carrying `metadata`.
    pub fn finish(
        &mut self,
        input_tokens: u64,
        output_tokens: u64,
        metadata: Value,
    ) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        self.start(&mut out);
        self.close(&mut out);
        out.push((
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}),
        ));
        out.push((
            "message_stop",
            json!({"type": "message_stop", "metadata": metadata}),
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::mock::script::{answer, chunks_json};

    #[test]
    fn openai_chunks_to_anthropic_events_and_back() {
        let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]);
        let body = json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools});
        let a = answer(body.as_object().unwrap(), "m", None);
        let chunks = chunks_json(&a, "m", "chatcmpl-1", 0, true);
        let mut enc = FromOpenAi::new("1", "m");
        let mut events: Vec<(&str, Value)> = chunks.iter().flat_map(|c| enc.chunk(c)).collect();
        events.extend(enc.finish(3, 4, json!({})));
        let names: Vec<&str> = events.iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            vec![
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        // And back to OpenAI: the tool call arguments survive.
        let mut dec = ToOpenAi::new(0);
        let back: Vec<Value> = events
            .iter()
            .flat_map(|(_, e)| dec.event(e).unwrap())
            .collect();
        let args: String = back
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(args, a.tool_calls[0].2);
        assert!(dec.finished);
        assert_eq!(back.last().unwrap()["usage"]["completion_tokens"], 4);
    }
}
