//! The prompt as the request log keeps it: within `logging.max_text_bytes` of text in all (the
//! same bound as the answer), with inline media (data-URL images, base64 audio, files) never
//! logged: a part keeps its type, media type and size. The shared store's row is the same
//! record, so it has the same bound.

use super::logstore::clip;
use serde_json::{json, Map, Value};

/// Strings this short (roles, part types, ids) are kept as they are and do not count.
const SHORT: usize = 64;

/// The messages as logged: `Cow::Borrowed` when they already fit (the common case, no copy).
pub fn logged(messages: &Value, max_text_bytes: usize) -> std::borrow::Cow<'_, Value> {
    if fits(messages, &mut 0, max_text_bytes) {
        return std::borrow::Cow::Borrowed(messages);
    }
    let mut left = max_text_bytes;
    std::borrow::Cow::Owned(bound(messages, &mut left))
}

/// Whether the messages hold no inline media and at most `max` bytes of text (strings over
/// [`SHORT`]), adding what they hold to `used`.
fn fits(v: &Value, used: &mut usize, max: usize) -> bool {
    match v {
        Value::String(s) if s.len() > SHORT => {
            *used += s.len();
            *used <= max && !is_inline_media(s)
        }
        Value::Array(a) => a.iter().all(|x| fits(x, used, max)),
        Value::Object(o) => o.values().all(|x| fits(x, used, max)),
        _ => true,
    }
}

/// A data URL, or a long run of base64 as audio and files carry it.
fn is_inline_media(s: &str) -> bool {
    s.starts_with("data:")
        || (s.len() > 1024
            && s.bytes()
                .take(1024)
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')))
}

/// What is logged of inline media: its media type (when the data URL says it) and size.
fn media(s: &str) -> Value {
    let (mime, data) = match s.strip_prefix("data:").and_then(|r| r.split_once(',')) {
        Some((head, data)) => (Some(head.trim_end_matches(";base64").to_string()), data),
        None => (None, s),
    };
    // Decoded size of base64 (padding aside).
    let bytes = data.len() / 4 * 3;
    json!({"inline_media_not_logged": {"media_type": mime, "bytes": bytes}})
}

/// A copy with long strings clipped against the bytes `left` and inline media replaced.
fn bound(v: &Value, left: &mut usize) -> Value {
    match v {
        Value::String(s) if s.len() > SHORT => {
            if is_inline_media(s) {
                return media(s);
            }
            let kept = clip(s, s.len(), *left).into_owned();
            *left = left.saturating_sub(s.len());
            Value::String(kept)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| bound(x, left)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), bound(x, left)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_prompts_are_logged_as_they_are_without_a_copy() {
        let m = json!([{"role": "user", "content": "hello there"}]);
        assert!(matches!(logged(&m, 1000), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn text_is_bounded_in_all_and_inline_media_keeps_only_type_and_size() {
        let image = format!("data:image/png;base64,{}", "A".repeat(100_000));
        let audio = "U".repeat(40_000);
        let m = json!([
            {"role": "system", "content": "s".repeat(300)},
            {"role": "user", "content": [
                {"type": "text", "text": "t".repeat(300)},
                {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ]},
        ]);
        let out = logged(&m, 500).into_owned();
        let text = serde_json::to_string(&out).unwrap();
        assert!(text.len() < 1500, "{} bytes: {text}", text.len());
        assert_eq!(out[0]["content"], json!("s".repeat(300)));
        let t = out[1]["content"][0]["text"].as_str().unwrap();
        assert!(
            t.starts_with(&"t".repeat(200)) && t.contains("100 more bytes not logged"),
            "{t}"
        );
        assert_eq!(
            out[1]["content"][1]["image_url"]["url"]["inline_media_not_logged"],
            json!({"media_type": "image/png", "bytes": 75_000})
        );
        assert_eq!(out[1]["content"][1]["image_url"]["detail"], "low");
        assert_eq!(
            out[1]["content"][2]["input_audio"]["data"]["inline_media_not_logged"]["bytes"],
            30_000
        );
        assert_eq!(out[1]["content"][2]["input_audio"]["format"], "wav");
        assert_eq!(out[0]["role"], "system");
        // A data URL is never logged, however small the budget's use.
        let tiny = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": format!("data:image/gif;base64,{}", "R".repeat(80))}}]}]);
        assert!(matches!(logged(&tiny, 1 << 20), std::borrow::Cow::Owned(_)));
    }
}
