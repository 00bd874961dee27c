//! `switchyard-train import`: RouteLLM outcome files and logged requests with feedback →
//! the outcome table (`data/outcomes.parquet`), with the data audit beside it; and
//! `switchyard-train audit`, the audit alone.

use crate::cli::{ImportArgs, Public, Sources};
use crate::outcomes;
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

/// Default `--map`: the RouteLLM pair onto the embedded config's mock models.
const DEFAULT_MAP: [(&str, &str); 2] = [
    (outcomes::STRONG, "mock/smart"),
    (outcomes::WEAK, "mock/fast"),
];

/// The benchmark-model → served-model map from `--map` (or the default).
fn model_map(a: &Sources) -> Result<BTreeMap<String, String>, String> {
    if a.map.is_empty() {
        return Ok(DEFAULT_MAP
            .iter()
            .map(|(b, s)| (b.to_string(), s.to_string()))
            .collect());
    }
    a.map
        .iter()
        .map(|m| {
            m.split_once('=')
                .filter(|(b, s)| !b.is_empty() && !s.is_empty())
                .map(|(b, s)| (b.to_string(), s.to_string()))
                .ok_or_else(|| {
                    format!(
                        "--map {m:?}: expected BENCHMARK_MODEL=SERVED_MODEL, e.g. {}=openai/gpt-4o",
                        outcomes::STRONG
                    )
                })
        })
        .collect()
}

/// Why the public data is left out, when it is: without `--map` it goes to the embedded
/// config's mock models, and when the logs have feedback but never name those models (served
/// or as `auto` candidates), the config that served them does not serve those — it would
/// refuse an artifact with them — so the public data is no prior for anything it serves.
fn unmapped_public_data(
    a: &Sources,
    map: &BTreeMap<String, String>,
    logged: &outcomes::Feedback,
) -> Option<String> {
    if !a.map.is_empty() || a.public.src.as_os_str() == "none" || logged.rows.is_empty() {
        return None;
    }
    let targets: BTreeSet<&str> = map.values().map(String::as_str).collect();
    if logged
        .logged_models
        .iter()
        .any(|m| targets.contains(m.as_str()))
    {
        return None;
    }
    let named: Vec<&str> = logged.logged_models.iter().map(String::as_str).collect();
    Some(format!(
        "the public data in {} is left out: without --map it is a prior for {} (the embedded config's models), and the logs in {} name only {}; \
         pass --map BENCHMARK_MODEL=YOUR_MODEL to keep it as a prior for one of yours (e.g. --map {}={}), or --src none to train on the logs alone without this note",
        a.public.src.display(),
        targets.into_iter().collect::<Vec<_>>().join(" and "),
        a.logs.display(),
        named.join(", "),
        outcomes::STRONG,
        named.first().copied().unwrap_or("provider/model"),
    ))
}

/// The public outcome rows (none with `--src none`), their contaminated prompts and the
/// groups excluded; the audit is written to `--audit`.
type Audited = (Vec<outcomes::Row>, HashSet<String>, Vec<String>);

fn audited(p: &Public) -> Result<Audited, String> {
    // `--src none`: production feedback only (a router trained on the user's own models).
    let (rows, contaminated) = if p.src.as_os_str() == "none" {
        (Vec::new(), HashSet::new())
    } else {
        outcomes::read_routellm(&p.src)?
    };
    let audit = outcomes::audit(&rows);
    let excluded = audit.excluded(p.exclude_suspect, &p.exclude);
    if let Some(dir) = p.audit.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&p.audit, audit.markdown(&excluded))
        .map_err(|e| format!("{}: {e}", p.audit.display()))?;
    for e in audit
        .entries
        .iter()
        .filter(|e| e.status != outcomes::Status::Ok)
    {
        eprintln!(
            "audit: {}/{} {}: accuracy {:.3} against a published {:.3} ({:?})",
            e.source, e.category, e.model, e.accuracy, e.published, e.status
        );
    }
    eprintln!(
        "audit written to {}; excluded: {excluded:?}",
        p.audit.display()
    );
    Ok((rows, contaminated, excluded))
}

/// `switchyard-train audit`: the data audit alone.
pub fn audit(a: &Public) -> Result<(), String> {
    audited(a).map(|_| ())
}

pub fn import(a: &ImportArgs) -> Result<DataFrame, String> {
    let t = Instant::now();
    let (rows, contaminated, excluded) = audited(&a.sources.public)?;
    let map = model_map(&a.sources)?;
    let logged = outcomes::read_feedback(&a.sources.logs)?;
    for n in &logged.notes {
        eprintln!("note: {n}");
    }
    let rows = match unmapped_public_data(&a.sources, &map, &logged) {
        Some(note) => {
            eprintln!("note: {note}");
            Vec::new()
        }
        None => rows,
    };
    let mut rows: Vec<outcomes::Row> = rows
        .into_iter()
        .filter(|r| !excluded.contains(&format!("{}/{}", r.source, r.category)))
        .map(|mut r| {
            r.model = map.get(&r.source_model).cloned().ok_or_else(|| {
                format!(
                    "benchmark model {:?} has no served model; add --map {}=<provider/model>",
                    r.source_model, r.source_model
                )
            })?;
            Ok(r)
        })
        .collect::<Result<_, String>>()?;
    let n_feedback = logged.rows.len();
    rows.extend(logged.rows);
    let mut df = outcomes::table(rows, &contaminated, a.table.seed)?;
    outcomes::write_parquet(&mut df, &a.table.data)?;
    let summary = df
        .clone()
        .lazy()
        .group_by_stable([col("source"), col("split")])
        .agg([
            col("prompt_id").n_unique().alias("prompts"),
            len().alias("rows"),
        ])
        .sort(["source", "split"], SortMultipleOptions::default())
        .collect()
        .map_err(|e| e.to_string())?;
    eprintln!(
        "imported {} outcome rows ({} from feedback, {} contaminated prompts kept out of test) into {} in {:.1}s\n{summary}",
        df.height(),
        n_feedback,
        contaminated.len(),
        a.table.data.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(df)
}
