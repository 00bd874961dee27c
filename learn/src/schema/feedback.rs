//! One line of the feedback log (`feedback.ndjson`): a score for a logged request.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// One line of the feedback log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FeedbackRecord<'a> {
    #[serde(default)]
    pub ts: Cow<'a, str>,
    #[serde(default)]
    pub ts_ms: u64,
    pub request_id: Cow<'a, str>,
    /// Who gave it (`user` by default; `judge…` only from the gateway's own judge).
    #[serde(default = "user_source")]
    pub source: Cow<'a, str>,
    /// 0 (bad) to 1 (good).
    pub score: f64,
    #[serde(default)]
    pub thumbs: Option<Cow<'a, str>>,
    #[serde(default)]
    pub comment: Option<Cow<'a, str>>,
    /// The model the feedback is about (by default the one that served).
    #[serde(default)]
    pub model: Option<Cow<'a, str>>,
    /// The key that gave it, when keys are configured.
    #[serde(default)]
    pub key: Option<Cow<'a, str>>,
}

fn user_source() -> Cow<'static, str> {
    Cow::Borrowed("user")
}
