//! The records the parts of Switchyard exchange, one type each, serialised and deserialised by
//! the same code: the request log line ([`LogRecord`]), the feedback line ([`FeedbackRecord`])
//! and the artifact manifest ([`Manifest`]). The gateway writes them; analytics, the feedback
//! index, the trainer, off-policy evaluation and the evals read them back with these types, so
//! renaming a field fails to compile every reader. `switchyard-train schema` prints their JSON
//! Schema (checked in under `docs/schema/`, tested for drift), which the Python side reads.
//!
//! Nothing here depends on the gateway or the trainer.

pub mod attempt;
pub mod decision;
pub mod feedback;
pub mod log;
pub mod manifest;

pub use attempt::{AttemptRecord, ErrorClass, FailureKind, Hedge, Skipped};
pub use decision::{Draw, LearnedDecision, NonText, Pacing};
pub use feedback::FeedbackRecord;
pub use log::{LogRecord, Savings, LOG_VERSION};
pub use manifest::Manifest;

/// The JSON Schema of each record, by file name under `docs/schema/`.
pub fn json_schemas() -> Vec<(&'static str, serde_json::Value)> {
    let schema = |s: schemars::Schema| s.to_value();
    vec![
        (
            "log-record.json",
            schema(schemars::schema_for!(LogRecord<'static>)),
        ),
        (
            "feedback-record.json",
            schema(schemars::schema_for!(FeedbackRecord<'static>)),
        ),
        ("manifest.json", schema(schemars::schema_for!(Manifest))),
    ]
}
