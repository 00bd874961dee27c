//! The canonical request: an OpenAI chat-completions body plus the Switchyard fields pulled out
//! of it (`model`, `models`, `metadata`, `user`), validated once.
//!
//! Every field Switchyard does not know is kept in `body` and passed through to
//! OpenAI-compatible upstreams.

use crate::error::{ErrorKind, GatewayError};
use serde_json::{Map, Value};
pub use switchyard_learn::prompt::content_text;
use switchyard_learn::prompt::estimate_prompt_tokens;

/// The request fields Switchyard reads itself and does not send upstream as they are
/// ([`ChatRequest::from_openai`] takes each out of the body; `model` is then set per attempt).
pub const SWITCHYARD_FIELDS: [&str; 4] = ["model", "models", "metadata", "router"];

/// A validated chat request in OpenAI shape.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The body to send upstream, without `model`, `models` and `metadata`.
    pub body: Map<String, Value>,
    /// What the client asked for in `model` (a model, a router or `auto`).
    pub model: Option<String>,
    /// Explicit fallback list (`models`).
    pub models: Vec<String>,
    /// Request metadata, visible to CEL routing conditions as bare identifiers.
    pub metadata: Map<String, Value>,
    pub user: Option<String>,
    pub stream: bool,
    /// The client asked for a usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Estimated prompt tokens (see [`estimate_prompt_tokens`]).
    pub prompt_tokens: u64,
    /// Learned-routing options (`"router": {"cost_weight": 0.3}`), not sent upstream.
    pub router_options: Map<String, Value>,
    /// Image and audio parts in the messages (CEL: `request.has_images`, `request.has_audio`).
    pub media: Media,
    /// The caller's budget pacing, read before planning (`auto` raises its cost weight by it).
    pub pacing: Option<switchyard_learn::schema::Pacing>,
}

/// The non-text parts of a request's messages.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Media {
    pub images: usize,
    pub audio: usize,
    /// The largest inline (data URL or base64) image or audio, in decoded bytes, and where.
    #[serde(skip)]
    pub largest_inline: Option<(usize, String)>,
}

impl Media {
    fn inline(&mut self, bytes: usize, at: &str) {
        if self.largest_inline.as_ref().is_none_or(|(b, _)| bytes > *b) {
            self.largest_inline = Some((bytes, at.to_string()));
        }
    }

    /// Refuses an inline image or audio part larger than `max` bytes (decoded), naming it.
    pub fn check_size(&self, max: usize) -> Result<(), GatewayError> {
        match &self.largest_inline {
            Some((bytes, at)) if *bytes > max => Err(media_too_large(at, *bytes, max)),
            _ => Ok(()),
        }
    }
}

/// The error for an inline image or audio part at `at` of `bytes` (decoded), over `max`.
pub fn media_too_large(at: &str, bytes: usize, max: usize) -> GatewayError {
    GatewayError::invalid(
        format!("{at}: the inline image or audio is {bytes} bytes; at most {max} (server.max_media_bytes)"),
        at,
    )
}

/// Counts and checks the image (`image_url`) and audio (`input_audio`) parts of the messages:
/// an image needs an http(s) or `data:image/...;base64,` URL, audio needs `data` and `format`.
fn media_of(messages: &[Value]) -> Result<Media, GatewayError> {
    let mut media = Media::default();
    for (i, m) in messages.iter().enumerate() {
        let Some(parts) = m.get("content").and_then(Value::as_array) else {
            continue;
        };
        for (j, p) in parts.iter().enumerate() {
            let at = format!("messages[{i}].content[{j}]");
            match p.get("type").and_then(Value::as_str) {
                Some("image_url") => {
                    let url = p["image_url"]["url"]
                        .as_str()
                        .or_else(|| p["image_url"].as_str())
                        .unwrap_or("");
                    if let Some(bytes) = image_url(url, &at, "image_url.url")? {
                        media.inline(bytes, &at);
                    }
                    media.images += 1;
                }
                Some("input_audio") => {
                    let a = &p["input_audio"];
                    let (Some(data), Some(_)) = (a["data"].as_str(), a["format"].as_str()) else {
                        return Err(GatewayError::invalid(
                            format!("{at}: an input_audio part needs `input_audio.data` (base64) and `input_audio.format`"),
                            &at,
                        ));
                    };
                    media.inline(data.len() / 4 * 3, &at);
                    media.audio += 1;
                }
                _ => {}
            }
        }
    }
    Ok(media)
}

/// Checks an image URL of a content part at `at` (`field` names it in the message): an http(s)
/// URL, or a `data:image/<type>;base64,` URL whose decoded size it returns.
pub fn image_url(url: &str, at: &str, field: &str) -> Result<Option<usize>, GatewayError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let Some((mime, data)) = rest.split_once(";base64,") else {
            return Err(GatewayError::invalid(
                format!("{at}: a data URL image must be `data:image/<type>;base64,<data>`"),
                at,
            ));
        };
        if !mime.starts_with("image/") {
            return Err(GatewayError::invalid(
                format!("{at}: {mime:?} is not an image type"),
                at,
            ));
        }
        return Ok(Some(data.len() / 4 * 3));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(GatewayError::invalid(
            format!("{at}: `{field}` must be an https URL or a data URL"),
            at,
        ));
    }
    Ok(None)
}

/// Whether a JSON text holds more than `max` values, counted without parsing: every `{`, `[`
/// and `,` outside strings starts one more value (an upper bound; a scalar-only body counts 0).
/// One pass over the bytes, so a body can be refused before it is parsed into memory.
pub fn json_values_exceed(bytes: &[u8], max: usize) -> bool {
    let (mut count, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' | b',' => {
                count += 1;
                if count > max {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// The text of the last `user` message of an OpenAI body.
pub fn last_user_text(body: &Map<String, Value>) -> String {
    body.get("messages")
        .and_then(Value::as_array)
        .and_then(|msgs| msgs.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default()
}

impl ChatRequest {
    /// Validates an OpenAI chat-completions body.
    pub fn from_openai(value: Value) -> Result<ChatRequest, GatewayError> {
        let Value::Object(mut body) = value else {
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                "the request body must be a JSON object",
            ));
        };
        // A literal `extra_body` object (some clients send it as-is) is merged into the top level.
        if let Some(Value::Object(extra)) = body.remove("extra_body") {
            for (k, v) in extra {
                body.entry(k).or_insert(v);
            }
        }
        let model = match body.remove("model") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`model` must be a non-empty string",
                    "model",
                ))
            }
        };
        let models = match body.remove("models") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(GatewayError::invalid(
                        "`models` must be a list of model names",
                        "models",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`models` must be a list of model names",
                    "models",
                ))
            }
        };
        if model.is_none() && models.is_empty() {
            return Err(GatewayError::invalid(
                "you must provide a model parameter (a model id, `router/<name>` or `auto`; see GET /v1/models)",
                "model",
            ));
        }
        let router_options = match body.remove("router") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`router` must be an object such as {\"cost_weight\": 0.3}",
                    "router",
                ))
            }
        };
        let metadata = match body.remove("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`metadata` must be an object",
                    "metadata",
                ))
            }
        };
        let user = match body.get("user") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(GatewayError::invalid("`user` must be a string", "user")),
        };
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`stream` must be a boolean",
                    "stream",
                ))
            }
        };
        let include_usage = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        for key in ["max_tokens", "max_completion_tokens"] {
            if let Some(v) = body.get(key) {
                if !v.is_null() && v.as_u64().is_none_or(|n| n == 0) {
                    return Err(GatewayError::invalid(
                        format!("`{key}` must be a positive integer"),
                        key,
                    ));
                }
            }
        }
        if let Some(t) = body.get("temperature") {
            if !t.is_null() && !t.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t)) {
                return Err(GatewayError::invalid(
                    "`temperature` must be a number between 0 and 2",
                    "temperature",
                ));
            }
        }
        let messages = match body.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => m,
            Some(Value::Array(_)) => {
                return Err(GatewayError::invalid(
                    "`messages` must not be empty",
                    "messages",
                ))
            }
            _ => {
                return Err(GatewayError::invalid(
                    "`messages` is required and must be a list of messages",
                    "messages",
                ))
            }
        };
        for (i, m) in messages.iter().enumerate() {
            let role = m.get("role").and_then(Value::as_str);
            if !matches!(
                role,
                Some("system" | "developer" | "user" | "assistant" | "tool" | "function")
            ) {
                return Err(GatewayError::invalid(
                    format!("messages[{i}].role must be one of system, developer, user, assistant, tool"),
                    &format!("messages[{i}].role"),
                ));
            }
        }
        let prompt_tokens = estimate_prompt_tokens(messages);
        let media = media_of(messages)?;
        Ok(ChatRequest {
            body,
            model,
            models,
            metadata,
            user,
            stream,
            include_usage,
            prompt_tokens,
            router_options,
            media,
            pacing: None,
        })
    }

    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn has_tools(&self) -> bool {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty())
    }

    pub fn last_user_text(&self) -> String {
        last_user_text(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_are_counted_outside_strings() {
        let body = br#"{"messages": [{"role": "user", "content": "a, b, {c} [d] \", e"}]}"#;
        // `{`, `[`, `{` and the comma between the two fields start values
        assert!(!json_values_exceed(body, 4));
        assert!(json_values_exceed(body, 3));
        let many = format!("[{}1]", "1,".repeat(1000));
        assert!(json_values_exceed(many.as_bytes(), 1000));
        assert!(!json_values_exceed(many.as_bytes(), 1001));
    }
    use serde_json::json;

    #[test]
    fn pulls_out_switchyard_fields_and_keeps_the_rest() {
        let r = ChatRequest::from_openai(json!({
            "model": "router/demo", "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"plan": "free"}, "user": "u1", "seed": 7,
            "extra_body": {"models": ["mock/fast"], "custom": true},
        }))
        .unwrap();
        assert_eq!(r.model.as_deref(), Some("router/demo"));
        assert_eq!(r.models, vec!["mock/fast"]);
        assert_eq!(r.metadata["plan"], "free");
        assert_eq!(r.user.as_deref(), Some("u1"));
        assert_eq!(r.body["seed"], 7);
        assert_eq!(r.body["custom"], true);
        assert!(!r.body.contains_key("model") && !r.body.contains_key("metadata"));
    }

    #[test]
    fn rejects_bad_fields_with_param() {
        let e = ChatRequest::from_openai(json!({"model": "x", "messages": []})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = ChatRequest::from_openai(json!({"messages": [{"role": "user", "content": "x"}]}))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = ChatRequest::from_openai(
            json!({"model": "x", "messages": [{"role": "user"}], "max_tokens": -1}),
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = ChatRequest::from_openai(
            json!({"model": "x", "messages": [{"role": "robot", "content": "x"}]}),
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
    }
}
