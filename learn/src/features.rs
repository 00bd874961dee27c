//! What the linear models read of a request: the prompt's embedding and length, and the
//! indicators of request metadata values seen in training.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The feature vector for a prompt.
pub fn features(embedding: &[f32], prompt_tokens: u64) -> Vec<f64> {
    let scale = (embedding.len() as f64).sqrt();
    let mut x: Vec<f64> = embedding.iter().map(|v| f64::from(*v) * scale).collect();
    x.push((1.0 + prompt_tokens as f64).ln() / 8.0);
    x
}

/// A request metadata key used as a feature (e.g. `plan`, `emotion`): one indicator per value
/// seen in training, appended to the prompt features, so each candidate's linear model learns
/// what the signal does to its answers ("a frustrated caller does better with the strong
/// model"). A value not seen in training, or a missing key, sets no indicator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetadataFeature {
    pub key: String,
    pub values: Vec<String>,
}

/// A metadata value as the features compare it: strings as they are, anything else as JSON.
pub fn metadata_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The indicators of `spec` for a request's metadata.
pub fn metadata_features(spec: &[MetadataFeature], metadata: &Map<String, Value>) -> Vec<f64> {
    spec.iter()
        .flat_map(|f| {
            let v = metadata.get(&f.key).map(metadata_value);
            f.values
                .iter()
                .map(move |x| f64::from(u8::from(v.as_deref() == Some(x.as_str()))))
        })
        .collect()
}
