//! What the learned core reads of a conversation: the text that is embedded ([`prompt_text`])
//! and the token estimates that feed routing conditions, features, cost and training alike.

use serde_json::{json, Value};

/// Estimated tokens for a text: one per four characters, rounded up. Used where an upstream
/// reports no usage and for routing conditions; real usage from the upstream always wins.
pub fn estimate_tokens(text: &str) -> u64 {
    estimate_tokens_of_chars(text.chars().count() as u64)
}

/// [`estimate_tokens`] of a text of `chars` characters (for text seen in pieces).
pub fn estimate_tokens_of_chars(chars: u64) -> u64 {
    chars.div_ceil(4)
}

/// Estimated prompt tokens of a conversation: [`estimate_tokens`] of all message text plus 3
/// per message. The same estimate feeds routing conditions, learned routing and training.
pub fn estimate_prompt_tokens(messages: &[Value]) -> u64 {
    let text: String = messages
        .iter()
        .map(|m| content_text(&m["content"]))
        .collect();
    estimate_tokens(&text) + 3 * messages.len() as u64
}

/// The prompt tokens the gateway estimates for a single user message (offline scoring uses it
/// so that estimates match serving).
pub fn single_turn_tokens(prompt: &str) -> u64 {
    estimate_prompt_tokens(&[json!({"role": "user", "content": prompt})])
}

/// The text content of an OpenAI message `content` (string or list of parts).
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The word between the head and the tail of a long message.
pub const ELLIPSIS: &str = "…";

/// Characters of the last user message kept from its head and from its tail.
const HEAD_CHARS: usize = 600;
const TAIL_CHARS: usize = 400;

/// The text embedded for a conversation (OpenAI `messages`), by a fixed rule:
/// the last user message — its first 600 and last 400 characters when longer than 1,000 —
/// followed, when present, by the first 200 characters of the system prompt. The tokenizer then
/// truncates to the manifest's `max_tokens`.
pub fn prompt_text(messages: &[Value]) -> String {
    let text_of = |m: &Value| content_text(&m["content"]);
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(text_of)
        .unwrap_or_default();
    let chars = last_user.chars().count();
    let mut out = if chars > HEAD_CHARS + TAIL_CHARS {
        let at = |n: usize| last_user.char_indices().nth(n).map_or(0, |(i, _)| i);
        let (head, tail) = (at(HEAD_CHARS), at(chars - TAIL_CHARS));
        format!("{} {ELLIPSIS} {}", &last_user[..head], &last_user[tail..])
    } else {
        last_user
    };
    if let Some(system) = messages
        .iter()
        .find(|m| m["role"] == "system" || m["role"] == "developer")
    {
        let s: String = text_of(system).chars().take(200).collect();
        if !s.is_empty() {
            out.push_str("\n\n");
            out.push_str(&s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_text_rule() {
        let long = "a".repeat(700) + &"b".repeat(700);
        let msgs = vec![
            json!({"role": "system", "content": "Be terse."}),
            json!({"role": "user", "content": "first"}),
            json!({"role": "assistant", "content": "ok"}),
            json!({"role": "user", "content": long}),
        ];
        let t = prompt_text(&msgs);
        assert!(t.starts_with(&"a".repeat(600)));
        assert!(t.contains(" … "));
        assert!(t.ends_with("\n\nBe terse."));
        assert_eq!(t.chars().filter(|c| *c == 'b').count(), 400);
        assert_eq!(
            prompt_text(&[json!({"role": "user", "content": "hi"})]),
            "hi"
        );
    }

    #[test]
    fn single_turn_matches_the_conversation_estimate() {
        assert_eq!(single_turn_tokens("abcdefgh"), 2 + 3);
    }
}
