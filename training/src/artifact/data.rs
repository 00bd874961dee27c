//! The data stage of fitting: the outcome rows of the table (split checked, prompts left out)
//! and their hash, the models with enough rows, the metadata features, and what the manifest
//! records of the table (prompts per split, the cost reference).

use super::{MIN_TRAIN_ROWS, MIN_VAL_ROWS};
use crate::cli::Fitting;
use crate::labelled::{self, Labelled};
use crate::outcomes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use switchyard_learn::artifact::{metadata_features, metadata_value, MetadataFeature};
use switchyard_learn::schema::manifest::{CostReference, LeftOut};

/// The rows a fit reads, the hash of their labels and the split column.
pub struct Rows {
    pub rows: Vec<Labelled>,
    pub hash: String,
    pub split: String,
}

/// The outcome rows of `data` on the split column `--split` names, without the prompts left
/// out; both the `train` and `val` sides must have rows.
pub fn read(data: &Path, f: &Fitting) -> Result<Rows, String> {
    let split = f.split.as_deref().unwrap_or("split");
    if split != "split" && split != "split_subject" {
        return Err(format!(
            "--split must be `split` or `split_subject`, not {split:?}"
        ));
    }
    let df = outcomes::read_parquet(data)?;
    let mut rows = labelled::load(&df, split)?;
    rows.retain(|r| !f.leave_out.contains(&r.prompt_id));
    for (name, want) in [("train", true), ("val", true)] {
        if want && !rows.iter().any(|r| r.split == name) {
            return Err(format!(
                "{}: the {name} split of column {split:?} is empty",
                data.display(),
            ));
        }
    }
    let mut data_hash = Sha256::new();
    let mut lines: Vec<String> = rows
        .iter()
        .map(|r| format!("{}|{}|{}|{}\n", r.prompt_id, r.model, r.quality, r.split))
        .collect();
    lines.sort();
    for l in &lines {
        data_hash.update(l.as_bytes());
    }
    let data_hash = format!("{:x}", data_hash.finalize());
    Ok(Rows {
        rows,
        hash: data_hash,
        split: split.to_string(),
    })
}

/// Keeps the rows of the models with enough training and validation rows; returns those
/// models and the ones left out. A model with too few rows of its own (feedback for a newly
/// added model) stays out of the artifact; the gateway serves it on an explicit prior until it
/// has more.
pub fn keep_models(
    rows: &mut Vec<Labelled>,
    data: &Path,
) -> Result<(Vec<String>, Vec<LeftOut>), String> {
    let mut left_out = Vec::new();
    let kept: Vec<String> = rows
        .iter()
        .map(|r| r.model.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|m| {
            let n = |split: &str| {
                rows.iter()
                    .filter(|r| r.model == *m && r.split == split)
                    .count()
            };
            let (t, v) = (n("train"), n("val"));
            let enough = t >= MIN_TRAIN_ROWS && v >= MIN_VAL_ROWS;
            if !enough {
                eprintln!("note: model {m}: {t} training and {v} validation rows, fewer than {MIN_TRAIN_ROWS} and {MIN_VAL_ROWS}; left out of the artifact (serve it on an [auto.priors] prior, with exploration, until it has more outcomes)");
                left_out.push(LeftOut {
                    model: m.to_string(),
                    train_rows: t,
                    validation_rows: v,
                });
            }
            enough
        })
        .map(String::from)
        .collect();
    if kept.is_empty() {
        return Err(format!(
            "no model has {MIN_TRAIN_ROWS} training and {MIN_VAL_ROWS} validation rows in {}",
            data.display()
        ));
    }
    rows.retain(|r| kept.contains(&r.model));
    Ok((kept, left_out))
}

/// The metadata features: the values each key of `features` takes in the training rows; each
/// row gets its indicators.
pub fn metadata_spec(rows: &mut [Labelled], features: &[String]) -> Vec<MetadataFeature> {
    // Metadata features: the values each key takes in the training rows.
    let parsed: Vec<serde_json::Map<String, serde_json::Value>> = if features.is_empty() {
        vec![Default::default(); rows.len()]
    } else {
        rows.iter()
            .map(|r| serde_json::from_str(&r.metadata_json).unwrap_or_default())
            .collect()
    };
    let spec: Vec<MetadataFeature> = features
        .iter()
        .map(|key| MetadataFeature {
            key: key.clone(),
            values: rows
                .iter()
                .zip(&parsed)
                .filter(|(r, _)| r.split == "train")
                .filter_map(|(_, m)| m.get(key).map(metadata_value))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        })
        .collect();
    for f in &spec {
        eprintln!("metadata feature {}: values {:?}", f.key, f.values);
    }
    for (r, m) in rows.iter_mut().zip(&parsed) {
        r.metadata = metadata_features(&spec, m);
    }
    spec
}

/// Distinct prompts per split.
pub fn split_sizes(rows: &[Labelled]) -> BTreeMap<String, usize> {
    ["train", "val", "test"]
        .iter()
        .map(|s| {
            (
                s.to_string(),
                rows.iter()
                    .filter(|r| r.split == *s)
                    .map(|r| &r.prompt_id)
                    .collect::<HashSet<_>>()
                    .len(),
            )
        })
        .collect()
}

/// The objective's cost unit is priced at the median training prompt and answer.
pub fn cost_reference(rows: &[Labelled]) -> CostReference {
    {
        let median = |mut v: Vec<u64>| {
            v.sort_unstable();
            v[v.len() / 2]
        };
        let mut seen = HashSet::new();
        let train_rows = || rows.iter().filter(|r| r.split == "train");
        let prompt = median(
            train_rows()
                .filter(|r| seen.insert(r.prompt_id.as_str()))
                .map(|r| switchyard_learn::prompt::single_turn_tokens(&r.prompt))
                .collect(),
        );
        let output = median(train_rows().map(|r| r.output_tokens).collect());
        CostReference {
            prompt_tokens: prompt,
            output_tokens: output,
            computed_on: "medians of the training prompts and answers".into(),
        }
    }
}
