//! OpenAI embeddings bodies (`POST /v1/embeddings`): the inputs as texts, validated once for
//! the endpoint (errors name `input`) and read by the mock providers.

use serde_json::{Map, Value};

/// The inputs of an embeddings body as texts (a token-id input becomes its ids joined by
/// spaces), or why `input` is not valid.
pub fn inputs(body: &Map<String, Value>) -> Result<Vec<String>, String> {
    let as_text = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Array(ids) if !ids.is_empty() && ids.iter().all(Value::is_u64) => Some(
                ids.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        }
    };
    const WHAT: &str =
        "`input` must be a non-empty string, a list of them, or a list of token-id lists";
    match body.get("input") {
        Some(v @ Value::String(_)) => Ok(vec![as_text(v).ok_or(WHAT)?]),
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_u64) => {
            Ok(vec![as_text(&body["input"]).ok_or(WHAT)?])
        }
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_INPUTS => items
            .iter()
            .map(|i| as_text(i).ok_or_else(|| WHAT.to_string()))
            .collect(),
        Some(Value::Array(items)) if items.len() > MAX_INPUTS => Err(format!(
            "`input` has {} items; at most {MAX_INPUTS} per request",
            items.len()
        )),
        _ => Err(WHAT.into()),
    }
}

/// OpenAI's limit on inputs per embeddings request.
pub const MAX_INPUTS: usize = 2048;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_lists_and_token_ids() {
        let of = |v: Value| inputs(v.as_object().unwrap());
        assert_eq!(of(json!({"input": "a"})).unwrap(), ["a"]);
        assert_eq!(of(json!({"input": ["a", "b"]})).unwrap(), ["a", "b"]);
        assert_eq!(of(json!({"input": [1, 2]})).unwrap(), ["1 2"]);
        assert_eq!(of(json!({"input": [[1], [2, 3]]})).unwrap(), ["1", "2 3"]);
        assert!(of(json!({"input": ""})).is_err());
        assert!(of(json!({"input": []})).is_err());
        assert!(of(json!({"input": [{"x": 1}]})).is_err());
        assert!(of(json!({})).is_err());
        assert!(of(json!({"input": vec!["a"; MAX_INPUTS + 1]}))
            .unwrap_err()
            .contains("at most"));
    }
}
