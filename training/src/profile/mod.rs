//! The artifact's profile ([`switchyard_learn::profile`]): a prompt's ease, fitted on the public
//! multi-model outcome data under `data/` (RouteLLM's MMLU, GSM8K and MT-Bench files and
//! arena-bench-v1), and its leave-one-dataset-out transfer table ([`transfer`]).

pub mod transfer;

use crate::embed::{encoder_text, Cache};
use crate::fit::{balanced_weights, Example, Gram, LAMBDAS};
use crate::outcomes::{self, prompt_id, Row};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use switchyard_learn::artifact::{Linear, GOOD_ANSWER};
use switchyard_learn::hash::stable_hash;
use switchyard_learn::memory::{leave_out_same, Memory};
use switchyard_learn::profile::{logit, Profile};
use switchyard_learn::score::quantile;

/// The public outcome rows under `dir` (`routellm/`, `arena-bench/`), and the prompt ids
/// RouteLLM lists as contaminated (kept out of evaluation).
pub fn public_rows(dir: &Path) -> Result<(Vec<Row>, HashSet<String>), String> {
    let (mut rows, contaminated) = outcomes::read_routellm(&dir.join("routellm"))?;
    rows.extend(outcomes::read_arena(&dir.join(outcomes::ARENA_DIR))?);
    Ok((rows, contaminated))
}

/// Whether `dir` holds public data: `none` does not, nor does a directory without `routellm/`
/// (then no profile is fitted, which stderr says).
pub fn present(dir: &Path) -> bool {
    if dir.as_os_str() == "none" {
        return false;
    }
    let there = dir.join("routellm").is_dir();
    if !there {
        eprintln!(
            "no public data at {} (no routellm/ in it): no profile, no transfer table",
            dir.display()
        );
    }
    there
}

/// One prompt with its outcomes: (model, good) pairs.
pub struct Item {
    pub id: String,
    pub text: String,
    pub dataset: String,
    pub input_tokens: u64,
    pub outcomes: Vec<(String, f64)>,
    /// The answers' output tokens where the data records them (0 where it does not).
    pub output_tokens: Vec<u64>,
}

/// Groups rows by (dataset, prompt).
pub fn items(rows: &[Row]) -> Vec<Item> {
    let mut by: BTreeMap<(String, String), Item> = BTreeMap::new();
    for r in rows {
        let id = prompt_id(&r.prompt);
        let item = by
            .entry((r.source.clone(), id.clone()))
            .or_insert_with(|| Item {
                id,
                text: encoder_text(&r.prompt),
                dataset: r.source.clone(),
                input_tokens: r.input_tokens,
                outcomes: vec![],
                output_tokens: vec![],
            });
        item.output_tokens.push(r.output_tokens);
        item.outcomes.push((
            r.source_model.clone(),
            f64::from(u8::from(r.quality >= GOOD_ANSWER)),
        ));
    }
    by.into_values().collect()
}

/// Each (dataset, model)'s good-answer rate over `items`.
pub fn abilities(items: &[&Item]) -> BTreeMap<(String, String), f64> {
    let mut sums: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for it in items {
        for (m, g) in &it.outcomes {
            let s = sums.entry((it.dataset.clone(), m.clone())).or_default();
            s.0 += g;
            s.1 += 1.0;
        }
    }
    sums.into_iter().map(|(k, (g, n))| (k, g / n)).collect()
}

/// A prompt's ease target: the logit of its smoothed good-answer rate minus its models' mean
/// logit ability.
fn ease_target(it: &Item, ability: &BTreeMap<(String, String), f64>) -> f64 {
    let n = it.outcomes.len() as f64;
    let good: f64 = it.outcomes.iter().map(|(_, g)| g).sum();
    let mean_ability = it
        .outcomes
        .iter()
        .map(|(m, _)| {
            logit(
                ability
                    .get(&(it.dataset.clone(), m.clone()))
                    .copied()
                    .unwrap_or(0.5),
            )
        })
        .sum::<f64>()
        / n;
    logit((good + 0.5) / (n + 1.0)) - mean_ability
}

/// Fits the ease regression on `items` (every dataset weighted equally), the ridge strength
/// chosen on a seeded fifth of the prompts held out.
pub fn fit(items: &[&Item], cache: &Cache, seed: u64) -> Profile {
    let ability = abilities(items);
    let examples: Vec<Example> = items
        .iter()
        .map(|it| {
            Example::new(
                cache.embedded(&it.text),
                ease_target(it, &ability),
                it.input_tokens,
                0,
            )
        })
        .collect();
    let groups: Vec<&str> = items.iter().map(|it| it.dataset.as_str()).collect();
    let weights = balanced_weights(&groups);
    let held = |it: &Item| stable_hash(&format!("{seed}:profile:{}", it.id)).is_multiple_of(5);
    let (mut train, mut train_w, mut val, mut val_w) = (vec![], vec![], vec![], vec![]);
    for ((e, w), it) in examples.iter().zip(&weights).zip(items) {
        if held(it) {
            val.push(e);
            val_w.push(*w);
        } else {
            train.push(e);
            train_w.push(*w);
        }
    }
    let target: fn(&Example) -> f64 = |e| e.quality;
    let gram = Gram::new(&train, &train_w);
    let error = |l: &Linear| {
        val.iter()
            .zip(&val_w)
            .map(|(e, w)| w * (l.value(&e.x) - e.quality).powi(2))
            .sum::<f64>()
    };
    let lambda = LAMBDAS
        .iter()
        .copied()
        .min_by(|a, b| {
            error(&gram.ridge(&train, target, *a))
                .total_cmp(&error(&gram.ridge(&train, target, *b)))
        })
        .unwrap_or(LAMBDAS[0]);
    let all: Vec<&Example> = examples.iter().collect();
    let ease = Gram::new(&all, &weights).ridge(&all, target, lambda);
    let mut datasets: Vec<String> = items.iter().map(|it| it.dataset.clone()).collect();
    datasets.sort();
    datasets.dedup();
    Profile {
        ease,
        datasets,
        prompts: items.len(),
        outcomes: items.iter().map(|it| it.outcomes.len()).sum(),
        lambda,
        memory_datasets: vec![],
        support_threshold: 0.0,
        support_k: SUPPORT_K,
        reference_tokens: None,
        memory: None,
    }
}

/// The open-ended datasets (GPT-4-judged answers to chat requests) whose prompts make the
/// profile's memory; MMLU's multiple-choice questions and GSM8K's word problems are benchmark
/// formats, not requests like a user's.
pub const OPEN_ENDED: [&str; 2] = ["arena_bench", "mt_bench"];
/// Neighbours of the profile's support.
const SUPPORT_K: usize = 10;
/// The quantile of the memory prompts' own support below which a prompt is unfamiliar.
const SUPPORT_QUANTILE: f64 = 0.05;

/// Adds the memory of the open-ended prompts among `items` to `profile`, and its threshold:
/// the 5th percentile of each memory prompt's support among the others.
fn with_memory(mut profile: Profile, items: &[&Item], cache: &Cache) -> Profile {
    let open: Vec<&[f32]> = items
        .iter()
        .filter(|it| OPEN_ENDED.contains(&it.dataset.as_str()))
        .map(|it| cache.embedded(&it.text))
        .collect();
    if open.len() <= SUPPORT_K {
        return profile;
    }
    let memory = Memory::build(&open, vec![], 0);
    let mut own: Vec<f64> = open
        .iter()
        .map(|e| {
            let mut sims = memory.similarities(e);
            leave_out_same(&mut sims);
            let near = memory.nearest_in(&sims, SUPPORT_K);
            near.iter().map(|n| f64::from(n.0)).sum::<f64>() / near.len().max(1) as f64
        })
        .collect();
    own.sort_by(f64::total_cmp);
    profile.support_threshold = (quantile(&own, SUPPORT_QUANTILE) * 1e6).round() / 1e6;
    profile.memory_datasets = OPEN_ENDED.iter().map(|d| d.to_string()).collect();
    let open_items: Vec<&&Item> = items
        .iter()
        .filter(|it| OPEN_ENDED.contains(&it.dataset.as_str()))
        .collect();
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    };
    let prompt = median(open_items.iter().map(|it| it.input_tokens).collect());
    let output = median(
        open_items
            .iter()
            .flat_map(|it| it.output_tokens.iter().copied())
            .filter(|t| *t > 0)
            .collect(),
    );
    profile.reference_tokens = prompt.zip(output);
    profile.memory = Some(memory);
    profile
}

/// The embedding cache filled with every item's text.
pub fn embedded(items: &[Item], e: &crate::cli::Embedding) -> Result<Cache, String> {
    use switchyard_learn::embed::{Embed, Encoder};
    let encoder = Encoder::load(&e.encoder, e.threads.max(1), 1).map_err(|e| e.to_string())?;
    let mut cache = Cache::load(&e.cache, encoder.id(), encoder.dimension())?;
    let texts: Vec<String> = items.iter().map(|it| it.text.clone()).collect();
    cache.fill(&encoder, &texts, e.threads)?;
    cache.save(&e.cache)?;
    Ok(cache)
}

/// The profile an artifact serves: fitted on every public dataset under `public` but the
/// prompts `held_out` (the artifact's test split; `none`: no profile).
pub fn for_artifact(
    public: &Path,
    e: &crate::cli::Embedding,
    seed: u64,
    held_out: &HashSet<&str>,
) -> Result<Option<Profile>, String> {
    if !present(public) {
        return Ok(None);
    }
    let (rows, _) = public_rows(public)?;
    let mut items = items(&rows);
    items.retain(|it| !held_out.contains(it.id.as_str()));
    let cache = embedded(&items, e)?;
    let all: Vec<&Item> = items.iter().collect();
    Ok(Some(with_memory(fit(&all, &cache, seed), &all, &cache)))
}
