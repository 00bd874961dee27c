//! `switchyard-train` (also `switchyard train`): outcome data → embeddings → predictors →
//! a versioned router artifact under `models/router-<version>/`.
//!
//! - `import`: RouteLLM outcome files + logged requests with feedback → `data/outcomes.parquet`
//!   ([`import`]); `audit`: the data audit alone
//! - `fit`: outcome table → embedding cache → ridge models + outcome memory → artifact, manifest
//!   and report ([`artifact`])
//! - `eval`: an artifact against static baselines on held-out outcomes, and the profile's
//!   leave-one-dataset-out transfer table ([`profile::transfer`]) → `evals/reports/<version>/`
//! - `ope`: an artifact on the logged `auto` traffic (off-policy) → `evals/reports/ope-<version>/`
//! - `schema`: the JSON Schemas of the records the parts exchange → `docs/schema/`
//! - `apgr`: the APGR of a curve, for the simulator
//! - `all`, or no subcommand: import, then fit
//!
//! The options of each are in [`cli`].

#![allow(
    clippy::print_stdout,
    reason = "the command line prints what each step made"
)]

mod artifact;
mod cli;
mod embed;
mod eval;
mod fit;
mod import;
mod labelled;
mod ope;
mod outcomes;
mod profile;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    // Each step prints what it made (an artifact or report directory, a value) on stdout, its
    // progress on stderr.
    let shown = |dir: std::path::PathBuf| dir.display().to_string();
    let result = match cli.command.unwrap_or(Command::All(cli.all)) {
        Command::Import(a) => import::import(&a).map(|_| a.table.data.display().to_string()),
        Command::Audit(a) => import::audit(&a).map(|_| a.audit.display().to_string()),
        Command::Fit(a) => {
            artifact::blend_of(&a.fitting).and_then(|b| artifact::fit_artifact(&a, &b).map(shown))
        }
        Command::All(a) => artifact::blend_of(&a.fitting).and_then(|b| {
            import::import(&a.import())?;
            artifact::fit_artifact(&a.fit(), &b).map(shown)
        }),
        Command::Eval(a) => eval::run(&eval::Args {
            artifact: &a.evaluated.artifact,
            data: &a.table.data,
            cache: &a.embedding.cache,
            encoder: &a.embedding.encoder,
            partition: &a.partition,
            reports: &a.evaluated.reports,
            seed: a.table.seed,
            bootstrap: a.evaluated.bootstrap,
            threads: a.embedding.threads,
            decisions: a.decisions.as_deref(),
        })
        .and_then(|dir| {
            profile::transfer::write(&dir, &a.public_data, &a.embedding, a.table.seed).map(|_| dir)
        })
        .map(shown),
        Command::Ope(a) => ope::run(&ope::Args {
            logs: &a.logs,
            cross_fit: a.cross_fit,
            refit: &|artifact, leave, out| artifact::twin(&a.embedding, artifact, leave, out),
            artifact: &a.evaluated.artifact,
            encoder: &a.embedding.encoder,
            cache: &a.embedding.cache,
            reports: &a.evaluated.reports,
            seed: a.seed,
            bootstrap: a.evaluated.bootstrap,
            threads: a.embedding.threads,
            min_matches: a.min_matches,
        })
        .map(shown),
        Command::Schema(a) => write_schemas(&a.out).map(|_| a.out.display().to_string()),
        Command::Apgr => eval::metrics::apgr_stdin(),
    };
    match result {
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// Writes each record's JSON Schema into `out`.
fn write_schemas(out: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, schema) in switchyard_learn::schema::json_schemas() {
        let path = out.join(name);
        let text = serde_json::to_string_pretty(&schema).map_err(|e| e.to_string())? + "\n";
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
