//! Anthropic ↔ OpenAI translation: a Messages request into the canonical shape (and the
//! canonical request back), a Messages response, and a stream of Messages events.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchyard::format::anthropic;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(openai) = anthropic::request::to_openai(v.clone()) {
        if let Some(body) = openai.as_object() {
            let _ = anthropic::request::from_openai(body, "claude-fuzz", 1024);
        }
    }
    if let Ok(c) = anthropic::response::to_openai(&v, 0) {
        let _ = anthropic::response::from_openai(&c, "m/fuzz");
    }
    let mut stream = anthropic::stream::ToOpenAi::new(0);
    let events: Vec<Value> = match v {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut back = anthropic::stream::FromOpenAi::new("req", "m/fuzz");
    for ev in &events {
        if let Ok(chunks) = stream.event(ev) {
            for c in &chunks {
                let _ = back.chunk(c);
            }
        }
    }
});
