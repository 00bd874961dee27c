//! Chat-completion chunks as the Responses API's typed event stream, in the order OpenAI sends
//! them: `response.created`, `response.in_progress`; per output item `output_item.added`, then
//! for text `content_part.added`, `output_text.delta`…, `output_text.done`, `content_part.done`,
//! for a function call `function_call_arguments.delta`…, `.done`; `output_item.done`; and last
//! `response.completed` (or `response.incomplete` after a length cut, `response.failed` when
//! the upstream broke off) with the whole response, usage and Switchyard's metadata. Every
//! event carries a `sequence_number`.

use super::response::{envelope, function_call_item, message_item, usage, Echo};
use serde_json::{json, Value};

/// The output item being streamed.
enum Open {
    Text {
        id: String,
        text: String,
    },
    Call {
        id: String,
        chat_index: u64,
        call_id: Value,
        name: Value,
        args: String,
    },
}

/// Encodes one stream.
pub struct FromOpenAi {
    id: String,
    request_id: String,
    model: String,
    created: u64,
    echo: Echo,
    seq: u64,
    started: bool,
    open: Option<Open>,
    /// Finished output items, in order.
    output: Vec<Value>,
    incomplete: bool,
}

type Events = Vec<(&'static str, Value)>;

impl FromOpenAi {
    pub fn new(request_id: &str, model: &str, echo: Echo) -> FromOpenAi {
        FromOpenAi {
            id: format!("resp_{request_id}"),
            request_id: request_id.to_string(),
            model: model.to_string(),
            created: crate::clock::unix_secs(),
            echo,
            seq: 0,
            started: false,
            open: None,
            output: Vec::new(),
            incomplete: false,
        }
    }

    fn push(&mut self, out: &mut Events, name: &'static str, mut ev: Value) {
        ev["type"] = json!(name);
        ev["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.push((name, ev));
    }

    fn response(&self, status: &str, usage: Value) -> Value {
        envelope(
            &self.id,
            &self.model,
            self.created,
            &self.echo,
            status,
            Value::Array(self.output.clone()),
            usage,
        )
    }

    fn start(&mut self, out: &mut Events) {
        if !self.started {
            self.started = true;
            let r = self.response("in_progress", Value::Null);
            self.push(out, "response.created", json!({"response": r}));
            self.push(out, "response.in_progress", json!({"response": r}));
        }
    }

    /// Closes the open output item, if any.
    fn close(&mut self, out: &mut Events) {
        let index = self.output.len();
        match self.open.take() {
            None => {}
            Some(Open::Text { id, text }) => {
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                self.push(out, "response.output_text.done", json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}));
                self.push(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                );
                let item = message_item(&id, &text, "completed");
                self.push(
                    out,
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                );
                self.output.push(item);
            }
            Some(Open::Call {
                id,
                call_id,
                name,
                args,
                ..
            }) => {
                self.push(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "name": name, "arguments": args}),
                );
                let item = function_call_item(&id, &call_id, &name, &args, "completed");
                self.push(
                    out,
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                );
                self.output.push(item);
            }
        }
    }

    /// The events for one canonical chunk.
    pub fn chunk(&mut self, c: &Value) -> Events {
        let mut out = Vec::new();
        self.start(&mut out);
        let Some(choice) = c["choices"].as_array().and_then(|a| a.first()) else {
            return out;
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            if !matches!(self.open, Some(Open::Text { .. })) {
                self.close(&mut out);
                let id = format!("msg_{}_{}", self.request_id, self.output.len());
                let index = self.output.len();
                let item = json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []});
                self.push(
                    &mut out,
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                );
                self.push(
                    &mut out,
                    "response.content_part.added",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}}),
                );
                self.open = Some(Open::Text {
                    id,
                    text: String::new(),
                });
            }
            let index = self.output.len();
            if let Some(Open::Text { id, text: all }) = &mut self.open {
                all.push_str(text);
                let id = id.clone();
                self.push(&mut out, "response.output_text.delta", json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []}));
            }
        }
        for tc in delta["tool_calls"].as_array().into_iter().flatten() {
            let chat_index = tc["index"].as_u64().unwrap_or(0);
            let same =
                matches!(&self.open, Some(Open::Call { chat_index: i, .. }) if *i == chat_index);
            if !same {
                self.close(&mut out);
                let index = self.output.len();
                let id = format!("fc_{}_{index}", self.request_id);
                let (call_id, name) = (tc["id"].clone(), tc["function"]["name"].clone());
                let item = function_call_item(&id, &call_id, &name, "", "in_progress");
                self.push(
                    &mut out,
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                );
                self.open = Some(Open::Call {
                    id,
                    chat_index,
                    call_id,
                    name,
                    args: String::new(),
                });
            }
            let index = self.output.len();
            if let (Some(part), Some(Open::Call { id, args, .. })) = (
                tc["function"]["arguments"]
                    .as_str()
                    .filter(|a| !a.is_empty()),
                &mut self.open,
            ) {
                args.push_str(part);
                let id = id.clone();
                self.push(
                    &mut out,
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": index, "delta": part}),
                );
            }
        }
        if choice["finish_reason"] == "length" {
            self.incomplete = true;
        }
        out
    }

    /// The closing events of a finished stream: the open item's, then `response.completed`
    /// (or `response.incomplete`) with usage and `metadata`.
    pub fn finish(
        &mut self,
        prompt_tokens: u64,
        completion_tokens: u64,
        metadata: Value,
    ) -> Events {
        let mut out = Vec::new();
        self.start(&mut out);
        self.close(&mut out);
        let status = if self.incomplete {
            "incomplete"
        } else {
            "completed"
        };
        let mut r = self.response(status, usage(prompt_tokens, completion_tokens));
        r["metadata"] = metadata;
        let name = if self.incomplete {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.push(&mut out, name, json!({"response": r}));
        out
    }

    /// The closing event of a stream the upstream broke off: `response.failed` with the error
    /// and `metadata`.
    pub fn failed(&mut self, message: &str, metadata: Value) -> Events {
        let mut out = Vec::new();
        self.start(&mut out);
        let mut r = self.response("failed", Value::Null);
        r["error"] = json!({"code": "server_error", "message": message});
        r["metadata"] = metadata;
        self.push(&mut out, "response.failed", json!({"response": r}));
        out
    }
}

/// Relays the events of an upstream that serves the Responses API natively: every event as
/// it came, but the terminal one (`response.completed`, `.incomplete`, `.failed`) is held
/// until the stream ends and then sent with Switchyard's `metadata` and served model id.
pub struct Passthrough {
    model: String,
    terminal: Option<Value>,
    next_seq: u64,
}

impl Passthrough {
    pub fn new(model: &str) -> Passthrough {
        Passthrough {
            model: model.to_string(),
            terminal: None,
            next_seq: 0,
        }
    }

    /// The event to send now (`None` for the held terminal event).
    pub fn event(&mut self, mut ev: Value) -> Option<(String, Value)> {
        let name = ev["type"].as_str().unwrap_or("message").to_string();
        if let Some(n) = ev["sequence_number"].as_u64() {
            self.next_seq = n + 1;
        }
        if ev["response"].is_object() {
            ev["response"]["model"] = json!(self.model);
        }
        if matches!(
            name.as_str(),
            "response.completed" | "response.incomplete" | "response.failed"
        ) {
            self.terminal = Some(ev);
            return None;
        }
        Some((name, ev))
    }

    /// `(input_tokens, output_tokens)` once the terminal event arrived.
    pub fn usage(&self) -> Option<(u64, u64)> {
        self.terminal
            .as_ref()
            .and_then(|t| super::response::usage_tokens(&t["response"]))
    }

    /// The held terminal event with `metadata`.
    pub fn finish(&mut self, metadata: Value) -> Option<(String, Value)> {
        let mut ev = self.terminal.take()?;
        ev["response"]["metadata"] = metadata;
        Some((
            ev["type"]
                .as_str()
                .unwrap_or("response.completed")
                .to_string(),
            ev,
        ))
    }

    /// `response.failed` for a stream the upstream broke off.
    pub fn failed(&mut self, message: &str, metadata: Value) -> (String, Value) {
        (
            "response.failed".into(),
            json!({"type": "response.failed", "sequence_number": self.next_seq, "response": {
                "object": "response", "status": "failed", "model": self.model, "output": [],
                "error": {"code": "server_error", "message": message}, "metadata": metadata,
            }}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn events_come_in_order_with_sequence_numbers() {
        let mut enc = FromOpenAi::new("r1", "m/x", Echo::default());
        let mut all = Vec::new();
        all.extend(enc.chunk(&chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )));
        all.extend(enc.chunk(&chunk(json!({"content": "Hel"}), Value::Null)));
        all.extend(enc.chunk(&chunk(json!({"content": "lo"}), Value::Null)));
        all.extend(enc.chunk(&chunk(json!({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{\"a\""}}]}), Value::Null)));
        all.extend(enc.chunk(&chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
            json!("tool_calls"),
        )));
        all.extend(enc.finish(3, 4, json!({"request_id": "r1"})));
        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, (_, ev)) in all.iter().enumerate() {
            assert_eq!(ev["sequence_number"], i as u64);
        }
        let done = &all.last().unwrap().1["response"];
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][1]["arguments"], "{\"a\":1}");
        assert_eq!(done["output"][1]["call_id"], "c1");
        assert_eq!(done["usage"]["output_tokens"], 4);
        assert_eq!(done["metadata"]["request_id"], "r1");
    }
}
