//! `[auto]`: learned routing's artifact and encoder, which served model stands for each
//! artifact candidate, guardrails, and the knob presets.

use super::models::{find_model, ModelConfig};
use super::source::{ConfigError, Source};
use crate::cel::CelExpr;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuto {
    artifact: Option<String>,
    encoder: Option<String>,
    default_knob: Option<String>,
    #[serde(default)]
    candidates: BTreeMap<String, String>,
    #[serde(default)]
    guardrails: Vec<String>,
    cache_size: Option<usize>,
    encoder_sessions: Option<usize>,
    watch: Option<bool>,
}

/// Learned routing (`model: "auto"`): where the artifact and encoder are, which configured
/// model serves each of the artifact's candidates, and the guardrails.
#[derive(Debug)]
pub struct AutoConfig {
    /// A `router-<version>` directory, or a directory whose `LATEST` file names one.
    pub artifact: PathBuf,
    pub encoder: PathBuf,
    /// Cost weight used when the request does not set one (0 = best quality, 1 = cheapest).
    pub default_cost_weight: f64,
    /// (artifact candidate id, configured model that serves it)
    pub candidates: Vec<(String, Arc<ModelConfig>)>,
    pub guardrails: Vec<Arc<CelExpr>>,
    pub cache_size: usize,
    pub encoder_sessions: usize,
    /// Reload when the artifact on disk changes (checked every second); SIGHUP always reloads.
    pub watch: bool,
}

/// The cost weight of a knob: `best`, `balanced`, `cheap` or a number in [0, 1].
///
/// The presets are read off the default artifact's eval sweep on held-out test prompts
/// (`evals/reports/79088b64b841`, potion encoder): `best` (0) sends ~96 % of prompts to the
/// strong model and recovers all of the quality gap; `balanced` (0.1) ~57 % of prompts, ~76 % of
/// the gap at ~56 % of the strong model's cost; `cheap` (0.3) ~5 % of prompts, ~10 % of the gap.
/// (The MiniLM artifact `6f70e7860325` gives 92 / 61 / 9 % of prompts at the same weights.)
pub fn cost_weight(knob: &str) -> Option<f64> {
    match knob {
        "best" => Some(0.0),
        "balanced" => Some(0.1),
        "cheap" => Some(0.3),
        n => n.parse::<f64>().ok().filter(|w| (0.0..=1.0).contains(w)),
    }
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
                None => cost_weight("balanced").expect("preset"),
                Some(k) => cost_weight(k).ok_or_else(|| {
                    err(
                        "auto.default_knob",
                        format!("{k:?} is not best, balanced, cheap or a number between 0 and 1"),
                    )
                })?,
            };
            let mut candidates = Vec::new();
            for (name, target) in &a.candidates {
                candidates.push((
                    name.clone(),
                    find_model(&format!("auto.candidates.{name:?}"), target)?,
                ));
            }
            if candidates.is_empty() {
                return Err(err("auto.candidates", "map each artifact candidate to a configured model, e.g. { \"gpt-4-1106-preview\" = \"openai/gpt-4o\" }".into()));
            }
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
                guardrails,
                cache_size: a.cache_size.unwrap_or(4096),
                encoder_sessions: a.encoder_sessions.unwrap_or(2).max(1),
                watch: a.watch.unwrap_or(true),
            })
        }
    };
    Ok(auto)
}
