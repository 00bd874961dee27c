//! Outcome rows as training and evaluation read them from the outcome table: one
//! [`Labelled`] row per (prompt, model) with its quality, tokens, cost, split and the logging
//! policy's propensity.

use crate::{embed, fit};
use polars::prelude::*;

/// One outcome row as training and evaluation need it.
pub struct Labelled {
    pub prompt_id: String,
    pub prompt: String,
    /// What the encoder sees for the prompt ([`embed::encoder_text`]).
    pub text: String,
    pub source: String,
    pub category: String,
    pub model: String,
    pub source_model: String,
    pub quality: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub split: String,
    /// The request's metadata indicators for the artifact's metadata features (filled by fit).
    pub metadata: Vec<f64>,
    /// The request's metadata (JSON object text; empty for benchmark rows).
    pub metadata_json: String,
    /// The probability the logging policy had of serving this model (1 for benchmark rows).
    pub propensity: f64,
}

pub fn load(df: &DataFrame, split_col: &str) -> Result<Vec<Labelled>, String> {
    let s = |n: &str| {
        df.column(n)
            .and_then(|c| c.str().cloned())
            .map_err(|e| format!("column {n}: {e}"))
    };
    let f = |n: &str| {
        df.column(n)
            .and_then(|c| c.cast(&DataType::Float64))
            .and_then(|c| c.f64().cloned())
            .map_err(|e| format!("column {n}: {e}"))
    };
    let (ids, prompts, models, splits, sources, source_models) = (
        s("prompt_id")?,
        s("prompt")?,
        s("model")?,
        s(split_col)?,
        s("source")?,
        s("source_model")?,
    );
    let categories = s("category")?;
    // Tables written before metadata was recorded have no such column.
    let metadata = s("metadata").ok();
    // Nor, before propensities were recorded, a propensity column: every row counts as 1.
    let propensity = f("propensity").ok();
    let (quality, it, ot, cost) = (
        f("quality")?,
        f("input_tokens")?,
        f("output_tokens")?,
        f("cost_usd")?,
    );
    Ok((0..df.height())
        .map(|i| Labelled {
            prompt_id: ids.get(i).unwrap_or("").to_string(),
            prompt: prompts.get(i).unwrap_or("").to_string(),
            text: embed::encoder_text(prompts.get(i).unwrap_or("")),
            source: sources.get(i).unwrap_or("").to_string(),
            category: categories.get(i).unwrap_or("").to_string(),
            model: models.get(i).unwrap_or("").to_string(),
            source_model: source_models.get(i).unwrap_or("").to_string(),
            quality: quality.get(i).unwrap_or(0.0),
            input_tokens: it.get(i).unwrap_or(0.0) as u64,
            output_tokens: ot.get(i).unwrap_or(0.0) as u64,
            cost_usd: cost.get(i).unwrap_or(0.0),
            split: splits.get(i).unwrap_or("").to_string(),
            metadata: vec![],
            metadata_json: metadata
                .as_ref()
                .and_then(|m| m.get(i))
                .unwrap_or("")
                .to_string(),
            propensity: propensity.as_ref().and_then(|p| p.get(i)).unwrap_or(1.0),
        })
        .collect())
}

/// Outcome rows as fitting examples (prompt features, then metadata indicators) and the
/// benchmark (or `feedback`) each came from.
pub fn examples<'a>(
    of: &[&'a Labelled],
    cache: &embed::Cache,
) -> (Vec<fit::Example>, Vec<&'a str>) {
    of.iter()
        .map(|r| {
            let e = cache.embedded(&r.text);
            (
                fit::Example::new(e, r.quality, r.input_tokens, r.output_tokens)
                    .with_metadata(&r.metadata),
                r.source.as_str(),
            )
        })
        .unzip()
}
