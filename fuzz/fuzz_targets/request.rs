//! The client request path before any upstream: the JSON value bound, JSON parsing and the
//! chat request parser (`ChatRequest::from_openai`), as `/v1/chat/completions` runs them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if switchyard::format::request::json_values_exceed(data, 100_000) {
        return;
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(req) = switchyard::format::request::ChatRequest::from_openai(v) {
            let _ = req.last_user_text();
            let _ = req.has_tools();
        }
    }
});
