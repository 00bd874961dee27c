//! Outcome data in one schema: the RouteLLM benchmark outcomes and logged production requests
//! with user feedback, as one polars table with a fixed, seeded, grouped split.
//!
//! Columns: `prompt_id` (sha256 of the prompt text, 16 hex), `prompt`, `source`, `category`,
//! `model` (the served model id the outcome is attached to), `source_model` (the model that
//! produced it: a benchmark model name, or the served id for feedback), `quality` (0–1), `input_tokens`, `output_tokens`, `cost_usd`, `origin`,
//! `contaminated`, `split` (train/val/test by prompt), `split_subject` (whole MMLU subjects and
//! MT-Bench categories held out; GSM8K and feedback by prompt), `propensity` (see [`Row::propensity`];
//! tables written before it have none and read as 1).

mod arena;
mod audit;
mod feedback;
mod routellm;

pub use audit::{audit, Status};

pub use arena::{read_arena, DIR as ARENA_DIR};
pub use feedback::{read_feedback, Feedback};
pub use routellm::read_routellm;

use polars::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use switchyard_learn::hash::stable_hash;
use switchyard_learn::price::Price;
use switchyard_learn::prompt::estimate_tokens;

/// The strong and weak model of the RouteLLM data, with the prices used for cost.
pub const STRONG: &str = "gpt-4-1106-preview";
pub const WEAK: &str = "mistralai/Mixtral-8x7B-Instruct-v0.1";

/// (input, output) USD per million tokens. GPT-4 Turbo's list price; Mixtral at the top of the
/// typical hosted range ($0.24–0.60).
pub fn price(model: &str) -> Option<(f64, f64)> {
    match model {
        STRONG => Some((10.0, 30.0)),
        WEAK => Some((0.6, 0.6)),
        _ => None,
    }
}

/// Estimated output tokens of an MMLU answer (a letter, maybe with a word); the files record none.
const MMLU_OUTPUT_TOKENS: u64 = 2;

/// One outcome row before it becomes a table.
#[derive(Debug, Clone)]
pub struct Row {
    pub prompt: String,
    pub source: String,
    pub category: String,
    pub model: String,
    pub source_model: String,
    pub quality: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub origin: String,
    /// The request's metadata as a JSON object (empty for benchmark rows).
    pub metadata: String,
    /// The probability with which the logged policy served this model for the request
    /// (`learned.exploration.propensity`; 1 for benchmark rows and requests not routed by
    /// `auto`). Training weighs feedback by its inverse to correct for how traffic was routed.
    pub propensity: f64,
}

pub fn prompt_id(prompt: &str) -> String {
    let d = Sha256::digest(prompt.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Input tokens as the gateway estimates them for a single user message.
pub fn input_tokens(prompt: &str) -> u64 {
    estimate_tokens(prompt) + 3
}

fn err(file: &Path, msg: impl std::fmt::Display) -> String {
    format!("{}: {msg}", file.display())
}

fn bucket(seed: u64, key: &str) -> u64 {
    stable_hash(&format!("{seed}:{key}")) % 100
}

fn split_of(b: u64, train: u64, val: u64) -> &'static str {
    if b < train {
        "train"
    } else if b < train + val {
        "val"
    } else {
        "test"
    }
}

/// Builds the outcome table: dedup by (prompt_id, model), price, and assign both splits.
pub fn table(
    rows: Vec<Row>,
    contaminated: &HashSet<String>,
    seed: u64,
) -> Result<DataFrame, String> {
    let n = rows.len();
    let mut c = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut metadata, mut propensity) = (vec![], vec![]);
    let (mut q, mut it, mut ot, mut cost, mut origin, mut cont, mut split, mut split_subject) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for r in rows.into_iter().filter(|r| !r.prompt.trim().is_empty()) {
        let id = prompt_id(&r.prompt);
        let is_cont = contaminated.contains(&id);
        let (pin, pout) = price(&r.source_model).unwrap_or((0.0, 0.0));
        let by_prompt = if is_cont {
            "train"
        } else {
            split_of(bucket(seed, &id), 70, 15)
        };
        let by_group = match r.source.as_str() {
            _ if is_cont => "train",
            "mmlu" | "mt_bench" => split_of(
                bucket(seed, &format!("{}/{}", r.source, r.category)),
                70,
                10,
            ),
            _ => by_prompt,
        };
        c.0.push(id);
        c.1.push(r.prompt);
        c.2.push(r.source);
        c.3.push(r.category);
        c.4.push(r.model);
        c.5.push(r.source_model);
        q.push(r.quality);
        it.push(r.input_tokens);
        ot.push(r.output_tokens);
        let price = Price {
            input_per_mtok: pin,
            output_per_mtok: pout,
        };
        cost.push(price.cost_usd(r.input_tokens as f64, r.output_tokens as f64));
        origin.push(r.origin);
        metadata.push(r.metadata);
        propensity.push(r.propensity);
        cont.push(is_cont);
        split.push(by_prompt);
        split_subject.push(by_group);
    }
    let df = DataFrame::new_infer_height(vec![
        Column::new("prompt_id".into(), c.0),
        Column::new("prompt".into(), c.1),
        Column::new("source".into(), c.2),
        Column::new("category".into(), c.3),
        Column::new("model".into(), c.4),
        Column::new("source_model".into(), c.5),
        Column::new("quality".into(), q),
        Column::new("input_tokens".into(), it),
        Column::new("output_tokens".into(), ot),
        Column::new("cost_usd".into(), cost),
        Column::new("origin".into(), origin),
        Column::new("metadata".into(), metadata),
        Column::new("contaminated".into(), cont),
        Column::new("split".into(), split),
        Column::new("split_subject".into(), split_subject),
        Column::new("propensity".into(), propensity),
    ])
    .map_err(|e| e.to_string())?;
    // Clean: drop out-of-range quality (empty prompts were dropped above); one row per (prompt, model).
    df.lazy()
        .filter(
            col("quality")
                .gt_eq(lit(0.0))
                .and(col("quality").lt_eq(lit(1.0))),
        )
        .unique_stable(
            Some(cols(["prompt_id", "model"])),
            UniqueKeepStrategy::First,
        )
        .collect()
        .map_err(|e| format!("cleaning the outcome table: {e}"))
}

/// Writes a frame to Parquet.
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    }
    let f = std::fs::File::create(path).map_err(|e| err(path, e))?;
    ParquetWriter::new(f)
        .finish(df)
        .map(|_| ())
        .map_err(|e| err(path, format!("cannot write Parquet: {e}")))
}

/// Reads the outcome table, checking its columns.
pub fn read_parquet(path: &Path) -> Result<DataFrame, String> {
    let df = LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().as_ref()),
        Default::default(),
    )
    .and_then(|lf| lf.collect())
    .map_err(|e| {
        err(
            path,
            format!("cannot read the outcome table: {e}; create it with `switchyard train import`"),
        )
    })?;
    for name in [
        "prompt_id",
        "prompt",
        "source",
        "category",
        "model",
        "source_model",
        "quality",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "split",
        "split_subject",
    ] {
        if df.column(name).is_err() {
            return Err(err(
                path,
                format!("missing column {name:?}; re-create it with `switchyard train import`"),
            ));
        }
    }
    if df.height() == 0 {
        return Err(err(path, "the outcome table is empty"));
    }
    Ok(df)
}
