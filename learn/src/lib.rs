//! The learned core of Switchyard: what turns a prompt into a routing decision, with no HTTP,
//! configuration or async runtime in it. The gateway (`switchyard`) serves with it and the
//! offline pipeline (`switchyard-training`) trains and evaluates with it, so both score prompts
//! with the same code.
//!
//! - [`prompt`]: what of a conversation is embedded, and the token estimates;
//! - [`embed`]: encoders (potion static embeddings, MiniLM ONNX, a deterministic fake) behind
//!   the [`embed::Embed`] trait;
//! - [`artifact`]: the trained router artifact (features, quality and output-token models,
//!   the kNN blend and the support of a decision); [`memory`]: its outcome memory; [`knn`]:
//!   a candidate's kNN rate over it; [`uniform`]: a constant artifact for tests and demos;
//! - [`features`]: what the linear models read of a request (embedding, length, metadata);
//!   [`linear`]: those models;
//! - [`price`]: prices per million tokens and the one cost formula;
//! - [`profile`]: a prompt's ease, so that a model without outcome data gets per-prompt predictions
//!   from its prior quality;
//! - [`score`]: predicted cost at the served models' prices, the objective, ranking and the
//!   strong-share calibration;
//! - [`savings`]: the savings ledger (cost against each decision's baseline, and the quality
//!   difference with an off-policy estimate and its interval);
//! - [`hash`]: the stable hash used for sticky assignment, caches and data splits;
//! - [`schema`]: the records the parts exchange (request log line, feedback line, artifact
//!   manifest), one type each for writing and reading;
//! - [`logfiles`]: the request and feedback log files as the trainer reads them.
//!
//! This crate imports nothing of the gateway or the trainer.

pub mod artifact;
pub mod embed;
pub mod error;
pub mod features;
pub mod hash;
pub mod knn;
pub mod linear;
pub mod logfiles;
pub mod memory;
pub mod price;
pub mod profile;
pub mod prompt;
pub mod savings;
pub mod schema;
pub mod score;
pub mod uniform;

pub use error::LearnError;

/// Rounded to 6 decimals: the precision figures are logged and compared at.
pub(crate) fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}
