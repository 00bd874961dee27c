//! One line of the request log (`requests-*.ndjson`, and the `record` column of PostgreSQL's
//! `requests`): what the gateway writes when a request ends, and what analytics, the feedback
//! index, training and off-policy evaluation read back. A request refused before any upstream
//! was tried is the same record with most fields empty.

use super::attempt::AttemptRecord;
use super::decision::LearnedDecision;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The version of [`LogRecord`] this code writes (its `v`). A line without `v` is version 1.
pub const LOG_VERSION: u32 = 1;

fn version_one() -> u32 {
    1
}

/// One line of the request log. Borrowed fields let the gateway write without copying; a
/// reader gets owned values. Only `request_id` is required of a line (logs of other tools
/// carry less).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogRecord<'a> {
    /// The record's schema version ([`LOG_VERSION`]).
    #[serde(rename = "v", default = "version_one")]
    pub version: u32,
    /// When the request arrived, RFC 3339 with milliseconds.
    #[serde(default)]
    pub ts: Cow<'a, str>,
    /// The same instant in Unix milliseconds.
    #[serde(default)]
    pub ts_ms: u64,
    pub request_id: Cow<'a, str>,
    /// `/v1/chat/completions`, `/v1/messages`, `/v1/responses`, ...
    #[serde(default)]
    pub endpoint: Cow<'a, str>,
    #[serde(default)]
    pub status: u16,
    /// The key's id (a virtual key's, or a router key's `key-` and a hash prefix, never the
    /// key), when keys are configured.
    #[serde(default)]
    pub key: Option<Cow<'a, str>>,
    /// The virtual key's team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<Cow<'a, str>>,
    #[serde(default)]
    pub user: Option<Cow<'a, str>>,
    #[serde(default)]
    pub metadata: Option<Cow<'a, Map<String, Value>>>,
    #[serde(default)]
    pub requested_model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub router: Option<Cow<'a, str>>,
    #[serde(default)]
    pub route: Option<Cow<'a, str>>,
    #[serde(default)]
    pub variant: Option<Cow<'a, str>>,
    #[serde(default)]
    pub reason: Option<Cow<'a, str>>,
    /// The learned decision of an `auto` request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<Cow<'a, LearnedDecision>>,
    /// What an `auto` request would have cost on its decision's baseline, with the same usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savings: Option<Savings>,
    /// The model that served, and its provider.
    #[serde(default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub provider: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub attempts: Cow<'a, [AttemptRecord]>,
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    #[serde(default)]
    pub duration_ms: f64,
    #[serde(default)]
    pub overhead_ms: f64,
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub cost_usd: f64,
    #[serde(default)]
    pub error: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stream_interrupted: bool,
    /// A stream finished by another model after it broke: where, from which model, by which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescue: Option<Cow<'a, Value>>,
    /// The request's messages as logged (bounded; inline media replaced by a note), unparsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    pub prompt: Option<Messages<'a>>,
    /// The answer as logged (bounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<Cow<'a, str>>,
}

impl LogRecord<'_> {
    /// The logged messages, parsed (`None` when the prompt was not logged or is not JSON).
    pub fn messages(&self) -> Option<Value> {
        match self.prompt.as_ref()? {
            Messages::Written(v) => Some(v.clone().into_owned()),
            Messages::Read(raw) => serde_json::from_str(raw.get()).ok(),
        }
    }
}

/// A logged prompt: the gateway writes the request's messages as they are (serialised once,
/// into the line); a reader keeps them unparsed until it asks ([`LogRecord::messages`]), so
/// readers that do not need them (analytics, the feedback index) never build the tree.
#[derive(Debug, Clone)]
pub enum Messages<'a> {
    Written(Cow<'a, Value>),
    Read(Box<RawValue>),
}

impl Serialize for Messages<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Messages::Written(v) => v.serialize(s),
            Messages::Read(raw) => raw.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Messages<'_> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Messages::Read)
    }
}

/// The savings ledger's entry of one `auto` request: its decision's baseline and what the
/// request's usage would have cost there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Savings {
    pub baseline: String,
    pub baseline_cost_usd: f64,
    /// `baseline_cost_usd − cost_usd` (negative when `auto` chose a pricier model).
    pub saved_usd: f64,
}

impl Savings {
    /// The entry of a request served with `usage` (prompt, completion tokens) at `cost_usd`,
    /// when its learned decision has a baseline among its scored candidates.
    pub fn of(learned: &LearnedDecision, usage: (u64, u64), cost_usd: f64) -> Option<Savings> {
        let baseline = learned.baseline.as_ref()?;
        let price = learned
            .candidates
            .iter()
            .find(|c| &c.model == baseline)?
            .price;
        let baseline_cost_usd = price.cost_usd(usage.0 as f64, usage.1 as f64);
        Some(Savings {
            baseline: baseline.clone(),
            baseline_cost_usd,
            saved_usd: baseline_cost_usd - cost_usd,
        })
    }
}
