//! `[auto]`: learned routing's artifact and encoder, the candidate served models (and the
//! priors of those the artifact has no data for), guardrails, the policy for unfamiliar
//! prompts, and the knob presets.

use super::catalog;
use super::models::{find_model, ModelConfig};
use super::source::{ConfigError, Source};
use crate::cel::CelExpr;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use switchyard_learn::score::{Prior, Unfamiliar};

/// `[auto] candidates`: a list of served models. (The old map from artifact names to served
/// models is recognised to say how to move on.)
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileCandidates {
    List(Vec<String>),
    /// `"available"`: the real models the configured keys unlock.
    Keyword(String),
    Map(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuto {
    artifact: Option<String>,
    encoder: Option<String>,
    default_knob: Option<String>,
    candidates: Option<FileCandidates>,
    /// With `candidates = "available"`: the candidates when no real model is available (no
    /// provider key set).
    offline_candidates: Option<Vec<String>>,
    baseline: Option<String>,
    #[serde(default)]
    priors: BTreeMap<String, Prior>,
    unfamiliar: Option<String>,
    min_support: Option<f64>,
    explore: Option<f64>,
    explore_budget_usd_per_hour: Option<f64>,
    explore_seed: Option<u64>,
    onboard: Option<f64>,
    onboard_outcomes: Option<usize>,
    latency_weight: Option<f64>,
    #[serde(default)]
    guardrails: Vec<String>,
    cache_size: Option<usize>,
    encoder_sessions: Option<usize>,
    watch: Option<bool>,
}

/// Learned routing (`model: "auto"`): where the artifact and encoder are, the candidate served
/// models with the priors of those the artifact has no outcomes for, and the guardrails.
#[derive(Debug, Clone)]
pub struct AutoConfig {
    /// A `router-<version>` directory, or a directory whose `LATEST` file names one.
    pub artifact: PathBuf,
    pub encoder: PathBuf,
    /// Cost weight used when the request does not set one (0 = best quality, 1 = cheapest).
    pub default_cost_weight: f64,
    /// The served models `auto` chooses among, in config order.
    pub candidates: Vec<Arc<ModelConfig>>,
    /// Every model this config serves (an artifact may only name these).
    pub served: Vec<String>,
    /// The prior of every candidate, used where the artifact has no outcome data of it: the
    /// explicit `[auto.priors]` entry, else the catalog's ([`crate::config::catalog::prior`]).
    pub priors: BTreeMap<String, Prior>,
    /// Where each candidate's prior comes from (`config`, `catalog: …`, `price tier …`).
    pub prior_sources: BTreeMap<String, String>,
    /// The savings ledger's baseline (`[auto] baseline`); `None`: the priciest eligible
    /// candidate of each decision.
    pub baseline: Option<String>,
    /// What to do with a prompt whose support is below `min_support`.
    pub unfamiliar: Unfamiliar,
    /// The support below which a prompt is unfamiliar; `None`: the artifact's threshold.
    pub min_support: Option<f64>,
    /// Exploration: the share of decisions sent to a non-top eligible candidate, and the most
    /// predicted spend on such requests per clock hour.
    pub explore: Explore,
    pub guardrails: Vec<Arc<CelExpr>>,
    pub cache_size: usize,
    pub encoder_sessions: usize,
    /// Reload when the artifact on disk changes (checked every second); SIGHUP always reloads.
    pub watch: bool,
    /// Score lost per second of a candidate's live time to first token (0: latency ignored).
    pub latency_weight: f64,
}

/// `[auto] explore` and `explore_budget_usd_per_hour`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Explore {
    /// Probability that a decision serves a uniformly drawn non-top eligible candidate (0: off).
    pub share: f64,
    /// Exploration stops for the rest of the clock hour once the explored requests' predicted
    /// cost reaches this; `None`: no cap.
    pub budget_usd_per_hour: Option<f64>,
    /// Seed of the exploration draws (reproducible simulations); `None`: from the clock.
    pub seed: Option<u64>,
    /// Onboarding (`[auto] onboard`): a further share of decisions for candidates the artifact
    /// has fewer than `onboard_outcomes` outcomes of (none, on a prior), so that a newly added
    /// model gets the labels it needs before exploration's share alone would give them (0: off).
    pub onboard: f64,
    /// The outcomes in the artifact below which a candidate is onboarded (default
    /// [`ONBOARD_OUTCOMES`]).
    pub onboard_outcomes: usize,
}

/// Default `[auto] onboard`: a tenth of decisions go to candidates the artifact has fewer than
/// `onboard_outcomes` outcomes of (new models), so that labels arrive from the first requests;
/// `onboard = 0` turns it off. Nothing is onboarded while every candidate has outcomes.
pub const DEFAULT_ONBOARD: f64 = 0.1;

/// The hourly cap on onboarded and explored requests' predicted cost when `onboard` is on by
/// default and no `explore_budget_usd_per_hour` is set.
pub const DEFAULT_ONBOARD_BUDGET: f64 = 1.0;

/// The real chat models among `models`: every model of a non-mock provider but embedding
/// models, in config order.
fn available(models: &[Arc<ModelConfig>]) -> Vec<String> {
    models
        .iter()
        .filter(|m| m.is_real_chat())
        .map(|m| m.id.clone())
        .collect()
}

/// Default `[auto] onboard_outcomes`: the artifact's outcomes of a candidate below which it is
/// onboarded (its kNN part then rests on 10 neighbours).
pub const ONBOARD_OUTCOMES: usize = 100;

/// The cost weight of a knob: `best`, `balanced`, `cheap` or a number in [0, 1].
///
/// What the presets do with the current artifact is measured by every eval report ("Knob
/// presets"); the `strong_share` knob is calibrated per artifact.
pub fn cost_weight(knob: &str) -> Option<f64> {
    switchyard_learn::score::PRESETS
        .iter()
        .find(|(name, _)| *name == knob)
        .map(|(_, w)| *w)
        .or_else(|| knob.parse::<f64>().ok().filter(|w| (0.0..=1.0).contains(w)))
}

/// Validates `[auto]` against the models.
pub(super) fn auto(
    raw: Option<&FileAuto>,
    models: &[Arc<ModelConfig>],
    src: &Source,
) -> Result<Option<AutoConfig>, ConfigError> {
    let err = |key: &str, reason: String| src.err(key, reason);
    let find_model = |key: &str, id: &str| find_model(models, key, id, src);
    let auto = match raw {
        None => None,
        Some(a) => {
            let default_cost_weight = match &a.default_knob {
                None => cost_weight("balanced").unwrap_or_default(),
                Some(k) => cost_weight(k).ok_or_else(|| {
                    err(
                        "auto.default_knob",
                        format!("{k:?} is not best, balanced, cheap or a number between 0 and 1"),
                    )
                })?,
            };
            let ids = match &a.candidates {
                Some(FileCandidates::List(ids)) if !ids.is_empty() => ids.clone(),
                Some(FileCandidates::Keyword(k)) if k == "available" => {
                    let real = available(models);
                    match &a.offline_candidates {
                        _ if !real.is_empty() => real,
                        Some(offline) if !offline.is_empty() => offline.clone(),
                        _ => return Err(err("auto.candidates", "\"available\" found no real model (no provider key is set) and no offline_candidates are listed; set a provider key (e.g. OPENAI_API_KEY) or list offline_candidates".into())),
                    }
                }
                Some(FileCandidates::Map(old)) => return Err(err("auto.candidates", format!("is now a list of served models: candidates = {:?}; artifacts name served models (attach benchmark outcomes to them when training: `switchyard train --map gpt-4-1106-preview=openai/gpt-4o`)", old.values().collect::<Vec<_>>()))),
                _ => return Err(err("auto.candidates", "list the served models auto chooses among, e.g. [\"openai/gpt-4o\", \"openai/gpt-4o-mini\"], or \"available\" for the real models the provider keys unlock".into())),
            };
            let mut candidates = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let m = find_model(&format!("auto.candidates[{i}]"), id)?;
                if candidates.iter().any(|c: &Arc<ModelConfig>| c.id == m.id) {
                    return Err(err(
                        &format!("auto.candidates[{i}]"),
                        format!("{id:?} is listed twice"),
                    ));
                }
                candidates.push(m);
            }
            for (id, p) in &a.priors {
                let key = format!("auto.priors.{id:?}");
                if !candidates.iter().any(|c| &c.id == id) {
                    if matches!(a.candidates, Some(FileCandidates::Keyword(_))) {
                        continue; // a prior for a model the keys set now do not unlock
                    }
                    return Err(err(&key, format!("{id:?} is not in auto.candidates")));
                }
                if !(0.0..=1.0).contains(&p.quality) {
                    return Err(err(
                        &key,
                        format!("quality {} is not a probability in [0, 1]", p.quality),
                    ));
                }
                if p.output_tokens.is_some_and(|t| t.is_nan() || t <= 0.0) {
                    return Err(err(&key, "output_tokens must be positive".into()));
                }
            }
            let unfamiliar = match a.unfamiliar.as_deref() {
                None => Unfamiliar::Cheapest,
                Some(u) => Unfamiliar::parse(u).ok_or_else(|| {
                    err(
                        "auto.unfamiliar",
                        format!("{u:?} is not cheapest, strongest or predict"),
                    )
                })?,
            };
            if let Some(m) = a.min_support.filter(|m| !(-1.0..=1.0).contains(m)) {
                return Err(err(
                    "auto.min_support",
                    format!("{m} is not a cosine similarity in [-1, 1]"),
                ));
            }
            let (mut priors, mut prior_sources) = (BTreeMap::new(), BTreeMap::new());
            for m in &candidates {
                let (prior, source) = match a.priors.get(&m.id) {
                    Some(p) => (*p, "config: [auto.priors]".to_string()),
                    None => {
                        let (quality, source) = catalog::prior(&m.id, m.output_price_per_mtok);
                        (
                            Prior {
                                quality,
                                output_tokens: None,
                            },
                            source,
                        )
                    }
                };
                priors.insert(m.id.clone(), prior);
                prior_sources.insert(m.id.clone(), source);
            }
            if let Some(b) = a
                .baseline
                .as_ref()
                .filter(|b| !candidates.iter().any(|c| &c.id == *b))
            {
                return Err(err(
                    "auto.baseline",
                    format!("{b:?} is not an [auto] candidate"),
                ));
            }
            let share = a.explore.unwrap_or(0.0);
            if !(0.0..=1.0).contains(&share) {
                return Err(err(
                    "auto.explore",
                    format!("{share} is not a share of decisions in [0, 1] (e.g. 0.05)"),
                ));
            }
            if let Some(b) = a
                .explore_budget_usd_per_hour
                .filter(|b| b.is_nan() || *b < 0.0)
            {
                return Err(err(
                    "auto.explore_budget_usd_per_hour",
                    format!("{b} is not an amount of USD (≥ 0)"),
                ));
            }
            let latency_weight = a.latency_weight.unwrap_or(0.0);
            if !(latency_weight.is_finite() && latency_weight >= 0.0) {
                return Err(err(
                    "auto.latency_weight",
                    format!("{latency_weight} is not a weight (≥ 0, score per second of TTFT)"),
                ));
            }
            let onboard = a.onboard.unwrap_or(DEFAULT_ONBOARD.min(1.0 - share));
            if !(0.0..=1.0).contains(&onboard) || share + onboard > 1.0 {
                return Err(err(
                    "auto.onboard",
                    format!(
                        "{onboard} is not a share of decisions in [0, 1] that leaves room \
                         beside explore = {share} (together at most 1; e.g. 0.1)"
                    ),
                ));
            }
            if a.onboard_outcomes == Some(0) {
                return Err(err(
                    "auto.onboard_outcomes",
                    "0 would onboard no candidate; give the outcomes below which a candidate \
                     is onboarded (default 100)"
                        .into(),
                ));
            }
            let explore = Explore {
                share,
                budget_usd_per_hour: a
                    .explore_budget_usd_per_hour
                    .or((onboard > 0.0 && a.onboard.is_none()).then_some(DEFAULT_ONBOARD_BUDGET)),
                seed: a.explore_seed,
                onboard,
                onboard_outcomes: a.onboard_outcomes.unwrap_or(ONBOARD_OUTCOMES),
            };
            let guardrails = a
                .guardrails
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    CelExpr::compile(g)
                        .map(Arc::new)
                        .map_err(|e| err(&format!("auto.guardrails[{i}]"), e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            Some(AutoConfig {
                artifact: PathBuf::from(a.artifact.clone().unwrap_or_else(|| "models".into())),
                encoder: PathBuf::from(
                    a.encoder
                        .clone()
                        .unwrap_or_else(|| switchyard_learn::embed::STATIC_DIR.into()),
                ),
                default_cost_weight,
                candidates,
                served: models.iter().map(|m| m.id.clone()).collect(),
                priors,
                prior_sources,
                baseline: a.baseline.clone(),
                unfamiliar,
                min_support: a.min_support,
                explore,
                guardrails,
                cache_size: a.cache_size.unwrap_or(4096),
                encoder_sessions: a.encoder_sessions.unwrap_or(2).max(1),
                watch: a.watch.unwrap_or(true),
                latency_weight,
            })
        }
    };
    Ok(auto)
}
