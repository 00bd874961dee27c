//! The command line: one subcommand per step (`import`, `audit`, `fit`, `all`, `eval`, `ope`,
//! `schema`, `apgr`), each with the options it reads. Options that several steps share live in
//! small groups flattened into each step's arguments, so a flag means one thing everywhere.

use clap::{Args, Parser, Subcommand};
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "switchyard-train",
    about = "Train Switchyard's learned router from outcome data",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Without a subcommand: import, then fit (as `all`).
    #[command(flatten)]
    pub all: AllArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Build the outcome table (Parquet) from the benchmark data and logged feedback.
    Import(ImportArgs),
    /// Write the audit of the public outcome data (each model's accuracy per benchmark subject
    /// against its published figure) without importing.
    Audit(Public),
    /// Train a router artifact from the outcome table.
    Fit(FitArgs),
    /// Import, then fit.
    All(AllArgs),
    /// Evaluate an artifact against static baselines on held-out outcomes.
    Eval(EvalArgs),
    /// Off-policy evaluation: estimate an artifact's quality and cost on the logged `auto`
    /// traffic (--logs) before it serves anyone.
    Ope(OpeArgs),
    /// Write the JSON Schemas of the request log record, the feedback record and the artifact
    /// manifest (generated from their Rust types).
    Schema(SchemaArgs),
    /// The APGR of a cost–quality curve (JSON on stdin: {"points": [[cost, quality], ...],
    /// "cheap": [cost, quality], "strong": [cost, quality]}), the one definition the evals,
    /// off-policy evaluation and the simulator share.
    Apgr,
}

/// The outcome table and the seed of its split assignment.
#[derive(Args, Clone)]
pub struct Table {
    /// The outcome table (written by import, read by fit and eval).
    #[arg(long, default_value = "data/outcomes.parquet")]
    pub data: PathBuf,
    /// Seed of the split assignment (and of the bootstrap).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// The prompt encoder and its embedding cache.
#[derive(Args, Clone)]
pub struct Embedding {
    /// The prompt encoder: models/encoder-potion (potion-base-8M, static) or models/encoder
    /// (MiniLM, ONNX).
    #[arg(long, default_value = "models/encoder-potion")]
    pub encoder: PathBuf,
    #[arg(long, default_value = "data/cache/embeddings.parquet")]
    pub cache: PathBuf,
    /// Embedding threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// The public outcome data and its audit.
#[derive(Args, Clone)]
pub struct Public {
    /// RouteLLM outcome data (mmlu/, gsm8k/, mt_bench/), or `none` to train on logged feedback only.
    #[arg(long, default_value = "data/routellm")]
    pub src: PathBuf,
    /// Also drop these `source/category` groups (e.g. `mmlu/college_physics`).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Also drop the groups the audit flags as suspect (broken ones are always dropped).
    #[arg(long)]
    pub exclude_suspect: bool,
    /// Where the data audit is written.
    #[arg(long, default_value = "evals/data-audit.md")]
    pub audit: PathBuf,
}

/// Where import reads outcomes: the public data, and the gateway's logs with feedback.
#[derive(Args, Clone)]
pub struct Sources {
    #[command(flatten)]
    pub public: Public,
    /// Gateway log dir with requests-*.ndjson and feedback-*.ndjson.
    #[arg(long, default_value = "logs")]
    pub logs: PathBuf,
    /// The served model each benchmark model's outcomes are attached to, as
    /// BENCHMARK_MODEL=SERVED_MODEL (repeatable). Default: the embedded config's mock models.
    #[arg(long = "map", value_name = "BENCH=SERVED")]
    pub map: Vec<String>,
}

#[derive(Args, Clone)]
pub struct ImportArgs {
    #[command(flatten)]
    pub table: Table,
    #[command(flatten)]
    pub sources: Sources,
}

/// How an artifact is fitted.
#[derive(Args, Clone)]
pub struct Fitting {
    /// Directory that receives router-<version>/.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    /// The split column: `split` (random by prompt, default) or `split_subject` (whole
    /// subjects held out).
    #[arg(long)]
    pub split: Option<String>,
    /// Request metadata keys to use as features (e.g. `--features plan,emotion`): one
    /// indicator per value seen in training, read from the logged requests.
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<String>,
    /// How fast a neighbour's weight fades with its similarity below the nearest training
    /// prompt's (the blend's `similarity_tau`; default 1).
    #[arg(long)]
    pub similarity_tau: Option<f64>,
    /// How many standard errors of the kNN part scoring subtracts (the blend's `pessimism`;
    /// default 2).
    #[arg(long)]
    pub pessimism: Option<f64>,
    /// Serve the first fit, on the `train` rows alone. By default, after validation (metrics,
    /// support threshold and calibration on the `val` rows, ridge strengths chosen), the
    /// served artifact is fitted again on the `train` and `val` rows with the strengths
    /// chosen, so that no labelled outcome outside the `test` split is held back from it
    /// (production feedback is scarce; its validation metrics are the first fit's). Recorded
    /// in the manifest (`training_data.refit_on`); OPE's twins follow it.
    #[arg(long)]
    pub no_refit: bool,
    /// Public multi-model outcome data (routellm/, arena-bench/) the artifact's profile is
    /// fitted on, so that candidates without outcomes get per-prompt predictions; `none` to fit
    /// no profile.
    #[arg(long, default_value = "data")]
    pub public_data: PathBuf,
    /// Prompt ids left out of training (set by `ope` for its cross-fitted twins).
    #[arg(skip)]
    pub leave_out: BTreeSet<String>,
}

#[derive(Args, Clone)]
pub struct FitArgs {
    #[command(flatten)]
    pub table: Table,
    #[command(flatten)]
    pub embedding: Embedding,
    #[command(flatten)]
    pub fitting: Fitting,
}

#[derive(Args, Clone)]
pub struct AllArgs {
    #[command(flatten)]
    pub table: Table,
    #[command(flatten)]
    pub embedding: Embedding,
    #[command(flatten)]
    pub sources: Sources,
    #[command(flatten)]
    pub fitting: Fitting,
}

impl AllArgs {
    pub fn import(&self) -> ImportArgs {
        ImportArgs {
            table: self.table.clone(),
            sources: self.sources.clone(),
        }
    }

    pub fn fit(&self) -> FitArgs {
        FitArgs {
            table: self.table.clone(),
            embedding: self.embedding.clone(),
            fitting: self.fitting.clone(),
        }
    }
}

/// The artifact evaluated and where its reports go.
#[derive(Args, Clone)]
pub struct Evaluated {
    /// The artifact (a router-<version> dir, or a dir with LATEST).
    #[arg(long, default_value = "models")]
    pub artifact: PathBuf,
    /// Where report directories are written.
    #[arg(long, default_value = "evals/reports")]
    pub reports: PathBuf,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
}

#[derive(Args, Clone)]
pub struct EvalArgs {
    #[command(flatten)]
    pub table: Table,
    #[command(flatten)]
    pub embedding: Embedding,
    #[command(flatten)]
    pub evaluated: Evaluated,
    /// The side of the artifact's split column to evaluate: `test` (default) or `val`.
    /// (`--split` is the older name.)
    #[arg(long, alias = "split", default_value = "test")]
    pub partition: String,
    /// Also write every learned decision (prompt, knob, chosen model) to this NDJSON file.
    #[arg(long)]
    pub decisions: Option<PathBuf>,
    /// Public multi-model outcome data for the leave-one-dataset-out table; `none` to skip it.
    #[arg(long, default_value = "data")]
    pub public_data: PathBuf,
}

#[derive(Args, Clone)]
pub struct OpeArgs {
    #[command(flatten)]
    pub embedding: Embedding,
    #[command(flatten)]
    pub evaluated: Evaluated,
    /// Gateway log dir with requests-*.ndjson and feedback-*.ndjson.
    #[arg(long, default_value = "logs")]
    pub logs: PathBuf,
    /// Seed of the cross-fitting folds and the bootstrap.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Folds of cross-fitting. The logs are usually in the artifact's training data, so each
    /// fold's decisions are replayed by a twin of the artifact trained (same data, split,
    /// seed and features) without that fold's prompts; 0 or 1 replays the artifact itself
    /// (right when the logs are newer than its training data).
    #[arg(long, default_value_t = 5)]
    pub cross_fit: usize,
    /// The fewest logged decisions that must agree with a policy for an estimate.
    #[arg(long, default_value_t = 30)]
    pub min_matches: usize,
}

#[derive(Args, Clone)]
pub struct SchemaArgs {
    /// The directory the schemas are written to.
    #[arg(long, default_value = "docs/schema")]
    pub out: PathBuf,
}
