//! Off-policy evaluation (`switchyard-train ope`): how a new artifact would have done on the
//! logged `auto` traffic, before it serves anyone.
//!
//! Every logged `auto` decision carries the served model, the probability the serving policy
//! had of choosing it (`exploration.propensity`), each candidate's prices and eligibility, and
//! the cost weight; feedback (users, the judge) gives the served answer's quality. The new
//! artifact re-decides each logged prompt among the candidates that were eligible then, with the
//! server's scoring. Its value is estimated with
//! - **IPS** (inverse propensity): the logged outcomes where the new choice equals the served
//!   model, weighted by 1 / propensity;
//! - **DR** (doubly robust): the artifact's own prediction for its choice, corrected by the
//!   weighted residual of the served model's observed outcome;
//!
//! for quality (feedback score) and cost (USD), with seeded bootstrap intervals and the effective
//! sample size of the weights. Where fewer than `min_matches` logged decisions agree with the new
//! policy (or the effective sample size is below it) no number is given: the logs do not support
//! it — typically because nothing explored the models the new artifact prefers. The same is
//! reported for the logging policy (observed) and for each single model.
//!
//! The logs are usually in the new artifact's training data, and an artifact re-deciding the
//! prompts it learned from would be credited with recalling their outcomes. So by default the
//! decisions are cross-fitted: split into folds by prompt, each fold is replayed by a twin of the
//! artifact trained the same way without that fold's prompts (`--cross-fit`, default 5; 0
//! replays the artifact itself, for logs newer than its training data), and every replay leaves
//! the prompt's own memory rows out ([`Artifact::predict_unseen`]).

mod report;

use crate::embed;
use crate::eval::resample;
use crate::outcomes::prompt_id;
use report::{Estimate, Estimates, Observed, OpeReport, PolicyValue};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use switchyard_learn::artifact::{artifact_dir, Artifact};
use switchyard_learn::hash::stable_hash;
use switchyard_learn::logfiles::{feedback_scores, mean_for, read_requests};
use switchyard_learn::price::Price;
use switchyard_learn::prompt::prompt_text;
use switchyard_learn::score::{order, quantile, rank_predicted, Priced, Prior, Unfamiliar};

/// Trains a twin of the evaluated artifact (its data, split, seed and features) without the
/// given prompt ids, into the given directory; returns the twin's directory.
pub type Refit<'a> = &'a dyn Fn(&Artifact, &BTreeSet<String>, &Path) -> Result<PathBuf, String>;

pub struct Args<'a> {
    pub logs: &'a Path,
    /// Folds of cross-fitting (0 or 1: evaluate the artifact itself).
    pub cross_fit: usize,
    pub refit: Refit<'a>,
    pub artifact: &'a Path,
    pub encoder: &'a Path,
    pub cache: &'a Path,
    pub reports: &'a Path,
    pub seed: u64,
    pub bootstrap: usize,
    pub threads: usize,
    pub min_matches: usize,
}

/// One logged `auto` decision with an outcome.
struct Logged {
    text: String,
    served: String,
    propensity: f64,
    cost_weight: f64,
    prompt_tokens: u64,
    /// Candidates eligible when it was decided: model, prices, the logged prediction.
    eligible: Vec<(String, Price, Prior)>,
    quality: f64,
    cost: f64,
    /// The request's metadata (for an artifact with metadata features).
    metadata: serde_json::Map<String, Value>,
}

/// The new policy on one logged decision: its choice and its predictions.
struct Replay {
    chosen: String,
    /// Predicted quality, cost and uncertainty discount (the scoring's penalty) of every
    /// eligible candidate.
    predicted: BTreeMap<String, (f64, f64, f64)>,
}

/// An estimate with its interval, or why there is none.
fn estimate(point: Option<f64>, samples: &mut [f64], why: &str) -> Estimate {
    match point {
        None => Estimate {
            value: None,
            ci95: None,
            why: Some(why.to_string()),
        },
        Some(v) => {
            // The eval's bootstrap interval: the 2.5 and 97.5 % quantiles of the resamples.
            samples.sort_by(f64::total_cmp);
            Estimate {
                value: Some(v),
                ci95: Some([quantile(samples, 0.025), quantile(samples, 0.975)]),
                why: None,
            }
        }
    }
}

/// A policy's IPS and DR estimates of quality and cost over the rows `idx`. With `discounted`
/// (a policy that chose by these predictions: the new artifact), DR's model term takes each
/// prediction less its uncertainty discount, as the scoring did: the policy picked the candidate
/// whose prediction was highest, so that prediction is biased upwards where it is uncertain (the
/// winner's curse); a fixed policy (a single model) takes the predictions as they are.
fn policy_value(
    rows: &[Logged],
    replay: &[Replay],
    (choose, discounted): (&dyn Fn(usize) -> String, bool),
    idx: &[usize],
) -> [f64; 5] {
    let n = idx.len().max(1) as f64;
    let (mut ips_q, mut dr_q, mut ips_c, mut dr_c, mut w1, mut w2) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for &i in idx {
        let (r, p) = (&rows[i], &replay[i]);
        let action = choose(i);
        let w = if action == r.served {
            1.0 / r.propensity.max(1e-9)
        } else {
            0.0
        };
        let model = |m: &str| {
            let (q, c, penalty) = p.predicted.get(m).copied().unwrap_or((0.0, 0.0, 0.0));
            (if discounted { q - penalty } else { q }, c)
        };
        let ((q_pi, c_pi), (q_a, c_a)) = (model(&action), model(&r.served));
        ips_q += w * r.quality;
        ips_c += w * r.cost;
        dr_q += q_pi + w * (r.quality - q_a);
        dr_c += c_pi + w * (r.cost - c_a);
        w1 += w;
        w2 += w * w;
    }
    let ess = if w2 > 0.0 { w1 * w1 / w2 } else { 0.0 };
    [ips_q / n, dr_q / n, ips_c / n, dr_c / n, ess]
}

/// Every estimate of one policy with bootstrap intervals; `None` values where support is thin.
fn report_policy(
    rows: &[Logged],
    replay: &[Replay],
    (choose, discounted): (&dyn Fn(usize) -> String, bool),
    a: &Args,
) -> PolicyValue {
    let all: Vec<usize> = (0..rows.len()).collect();
    let matches = all.iter().filter(|&&i| choose(i) == rows[i].served).count();
    let point = policy_value(rows, replay, (choose, discounted), &all);
    let supported = matches >= a.min_matches && point[4] >= a.min_matches as f64;
    let why = format!(
        "{matches} logged decisions agree with this policy (effective sample size {:.1}); at least {} are needed — explore more ([auto] explore) or log longer",
        point[4], a.min_matches
    );
    let mut samples: [Vec<f64>; 4] = Default::default();
    if supported {
        for round in 0..a.bootstrap as u64 {
            let v = policy_value(
                rows,
                replay,
                (choose, discounted),
                &resample(&all, a.seed, round),
            );
            for k in 0..4 {
                samples[k].push(v[k]);
            }
        }
    }
    let [ips_q, dr_q, ips_c, dr_c] = &mut samples;
    let g = |k: usize| supported.then_some(point[k]);
    PolicyValue {
        matches,
        effective_sample_size: point[4],
        quality: Estimates {
            ips: estimate(g(0), ips_q, &why),
            dr: estimate(g(1), dr_q, &why),
        },
        cost_usd: Estimates {
            ips: estimate(g(2), ips_c, &why),
            dr: estimate(g(3), dr_c, &why),
        },
    }
}

/// Reads the logged `auto` decisions that have an outcome; returns them and notes on what was
/// skipped.
fn read_logged(logs: &Path) -> Result<(Vec<Logged>, Vec<String>), String> {
    let err = |e: std::io::Error| format!("{}: {e}", logs.display());
    let rewards = feedback_scores(logs).map_err(err)?;
    let (mut rows, mut no_text, mut no_feedback, mut not_auto) = (Vec::new(), 0, 0, 0);
    for r in read_requests(logs).map_err(err)? {
        let (Some(learned), Some(served)) = (&r.learned, &r.model) else {
            not_auto += 1;
            continue;
        };
        let Some(messages) = r.messages() else {
            no_text += 1;
            continue;
        };
        let Some(messages) = messages.as_array() else {
            no_text += 1;
            continue;
        };
        // Feedback about the served answer (a pairwise judge also scores the alternative).
        let Some(quality) = mean_for(&rewards, &r.request_id, served) else {
            no_feedback += 1;
            continue;
        };
        let eligible = learned
            .candidates
            .iter()
            .filter(|c| c.eligible)
            .map(|c| {
                (
                    c.model.clone(),
                    c.price,
                    Prior {
                        quality: c.predicted_quality,
                        output_tokens: Some(c.predicted_output_tokens),
                    },
                )
            })
            .collect();
        rows.push(Logged {
            text: prompt_text(messages),
            served: served.to_string(),
            propensity: learned.exploration.propensity,
            cost_weight: learned.cost_weight,
            prompt_tokens: learned.prompt_tokens,
            eligible,
            quality,
            cost: r.cost_usd,
            metadata: r
                .metadata
                .clone()
                .map(|m| m.into_owned())
                .unwrap_or_default(),
        });
    }
    let notes = vec![format!(
        "{} logged auto decisions with feedback; skipped {not_auto} requests that were not auto decisions, {no_text} logged without text (log_text = false), {no_feedback} without feedback",
        rows.len()
    )];
    Ok((rows, notes))
}

pub fn run(a: &Args) -> Result<PathBuf, String> {
    let dir = artifact_dir(a.artifact).map_err(|e| e.to_string())?;
    let artifact = Artifact::load(&dir).map_err(|e| e.to_string())?;
    let (rows, notes) = read_logged(a.logs)?;
    for n in &notes {
        eprintln!("note: {n}");
    }
    if rows.is_empty() {
        return Err(format!(
            "{}: no logged auto decision has feedback; serve `auto` with logging on and post feedback first",
            a.logs.display()
        ));
    }
    let texts: Vec<String> = rows.iter().map(|r| r.text.clone()).collect();
    let cache = embed::for_artifact(&artifact, a.encoder, a.cache, &texts, a.threads)?;
    // Cross-fitting: when the logs are (as usual) in the artifact's training data, each fold's
    // decisions are replayed by a twin trained without that fold's prompts, so the estimate is
    // of what the training gives on prompts it has not seen, not of recalling their outcomes.
    let folds = a.cross_fit.max(1);
    let fold_of: Vec<usize> = rows
        .iter()
        .map(|r| {
            (stable_hash(&format!("{}:{}", a.seed, prompt_id(&r.text))) % folds as u64) as usize
        })
        .collect();
    let out = a.reports.join(format!("ope-{}", artifact.version()));
    let mut replay: Vec<Option<Replay>> = (0..rows.len()).map(|_| None).collect();
    for fold in 0..folds {
        let idx: Vec<usize> = (0..rows.len()).filter(|&i| fold_of[i] == fold).collect();
        let twin = if folds == 1 {
            None
        } else {
            let leave: BTreeSet<String> = idx.iter().map(|&i| prompt_id(&rows[i].text)).collect();
            let dir = (a.refit)(
                &artifact,
                &leave,
                &out.join("twins").join(format!("fold-{fold}")),
            )?;
            Some(Artifact::load(&dir).map_err(|e| e.to_string())?)
        };
        let by = twin.as_ref().unwrap_or(&artifact);
        for i in idx {
            replay[i] = Some(replay_one(by, &rows[i], cache.embedded(&rows[i].text)));
        }
    }
    let replay: Vec<Replay> = replay
        .into_iter()
        .collect::<Option<_>>()
        .ok_or("a logged decision was in no cross-fitting fold")?;
    let new = report_policy(&rows, &replay, (&|i| replay[i].chosen.clone(), true), a);
    let models: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.eligible.iter().map(|e| e.0.as_str()))
        .collect();
    let singles: BTreeMap<String, PolicyValue> = models
        .iter()
        .map(|m| {
            let single = report_policy(&rows, &replay, (&|_| m.to_string(), false), a);
            (m.to_string(), single)
        })
        .collect();
    let n = rows.len() as f64;
    let logging = Observed {
        quality: rows.iter().map(|r| r.quality).sum::<f64>() / n,
        cost_usd: rows.iter().map(|r| r.cost).sum::<f64>() / n,
    };
    let mut share: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &replay {
        *share.entry(r.chosen.as_str()).or_default() += 1;
    }
    let metrics = OpeReport {
        artifact: artifact.version().to_string(),
        logs: a.logs.display().to_string(),
        decisions: rows.len(),
        notes,
        min_matches: a.min_matches,
        seed: a.seed,
        bootstrap_resamples: a.bootstrap,
        cross_fit_folds: folds,
        new_policy: new,
        new_policy_traffic_share: share
            .iter()
            .map(|(m, c)| (m.to_string(), *c as f64 / n))
            .collect(),
        logging_policy_observed: logging,
        single_models: singles,
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(
        out.join("metrics.json"),
        serde_json::to_string_pretty(&metrics).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(out.join("report.md"), report::markdown(&metrics))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(out.join("cost_quality.svg"), report::svg(&metrics))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// The artifact's decision and predictions for one logged prompt, as if the prompt were new.
fn replay_one(artifact: &Artifact, r: &Logged, emb: &[f32]) -> Replay {
    let threshold = artifact.support_threshold().unwrap_or(f64::NEG_INFINITY);
    let has_data = |m: &str| artifact.weights.candidates.iter().any(|c| c.model == m);

    let priced: Vec<Priced> = r
        .eligible
        .iter()
        .map(|(model, price, prior)| Priced {
            model: model.clone(),
            price: *price,
            // A candidate the new artifact has no data for keeps the logged prediction.
            prior: (!has_data(model)).then_some(*prior),
        })
        .collect();
    let metadata = artifact.metadata_features(&r.metadata);
    // As if the prompt were new: the artifact was trained on these very logs, and
    // recalling a prompt's own outcome would flatter it.
    let mut ranked = rank_predicted(
        artifact,
        artifact.predict_unseen(emb, r.prompt_tokens, &metadata),
        &priced,
        r.prompt_tokens,
        r.cost_weight,
    );
    let unfamiliar = ranked.support.similarity < threshold;
    order(
        &mut ranked.candidates,
        unfamiliar.then_some(Unfamiliar::Cheapest),
        r.cost_weight,
    );
    Replay {
        chosen: ranked
            .candidates
            .first()
            .map_or_else(|| r.served.clone(), |c| c.model.clone()),
        predicted: ranked
            .candidates
            .iter()
            .map(|c| {
                let predicted = (c.predicted_quality, c.predicted_cost_usd, c.penalty);
                (c.model.clone(), predicted)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A logged decision with no text, metadata or eligible list.
    fn logged(served: &str, propensity: f64, quality: f64, cost: f64) -> Logged {
        Logged {
            text: String::new(),
            served: served.into(),
            propensity,
            cost_weight: 0.0,
            prompt_tokens: 0,
            eligible: vec![],
            quality,
            cost,
            metadata: Default::default(),
        }
    }

    /// `n` replays choosing `b`, with (quality, cost, discount) predictions for `a` and `b`.
    fn always_b(n: usize, [a, b]: [(f64, f64, f64); 2]) -> Vec<Replay> {
        (0..n)
            .map(|_| Replay {
                chosen: "b".into(),
                predicted: [("a".to_string(), a), ("b".to_string(), b)].into(),
            })
            .collect()
    }

    /// Two models, logging uniformly at random (propensity 0.5): IPS and DR of "always b"
    /// recover b's true mean, and a policy the logs never tried gets no number.
    #[test]
    fn estimators_recover_a_known_value_and_refuse_thin_support() {
        let truth = |m: &str, i: usize| {
            if m == "b" {
                (i % 10 < 8) as u8 as f64
            } else {
                (i % 10 < 4) as u8 as f64
            }
        };
        let rows: Vec<Logged> = (0..2000)
            .map(|i| {
                let served = if (i * 7919) % 2 == 0 { "a" } else { "b" };
                let cost = if served == "b" { 2.0 } else { 1.0 };
                logged(served, 0.5, truth(served, i / 2), cost)
            })
            .collect();
        // A predictor that is off by 0.1 for both: DR corrects it.
        let replay = always_b(rows.len(), [(0.5, 1.0, 0.0), (0.7, 2.0, 0.0)]);
        let args = Args {
            logs: Path::new(""),
            cross_fit: 0,
            refit: &|_, _, _| Err("not in this test".into()),
            artifact: Path::new(""),
            encoder: Path::new(""),
            cache: Path::new(""),
            reports: Path::new(""),
            seed: 1,
            bootstrap: 200,
            threads: 1,
            min_matches: 20,
        };
        let v = report_policy(&rows, &replay, (&|_| "b".into(), false), &args);
        for (est, q, c) in [
            ("ips", &v.quality.ips, &v.cost_usd.ips),
            ("dr", &v.quality.dr, &v.cost_usd.dr),
        ] {
            let value = q.value.unwrap();
            assert!((value - 0.8).abs() < 0.05, "{est}: {value}");
            let ci = q.ci95.unwrap();
            assert!(ci[0] < 0.8 && 0.8 < ci[1], "{v:?}");
            let cost = c.value.unwrap();
            assert!((cost - 2.0).abs() < 0.15, "{est} cost {cost}");
        }
        let never = report_policy(&rows, &replay, (&|_| "c".into(), false), &args);
        assert!(never.quality.ips.value.is_none(), "{never:?}");
        assert!(never
            .quality
            .dr
            .why
            .as_deref()
            .unwrap()
            .contains("0 logged decisions agree"));
    }

    /// A policy that chose by the predictions (the new artifact) has DR's model term take them
    /// less their discount; a fixed policy takes them as they are.
    #[test]
    fn the_new_artifacts_model_term_is_discounted() {
        // Served b (propensity 0.9, good), then a (the policy would have chosen b).
        let rows = [logged("b", 0.9, 1.0, 0.0), logged("a", 0.1, 0.0, 0.0)];
        let replay = always_b(2, [(0.5, 0.0, 0.0), (0.7, 0.0, 0.1)]);
        let dr = |discounted: bool| {
            policy_value(&rows, &replay, (&|_| "b".into(), discounted), &[0, 1])[1]
        };
        // (0.7 + (1 − 0.7) / 0.9 + 0.7) / 2, then with 0.6 for 0.7.
        assert!((dr(false) - (0.7 + 0.3 / 0.9 + 0.7) / 2.0).abs() < 1e-9);
        assert!((dr(true) - (0.6 + 0.4 / 0.9 + 0.6) / 2.0).abs() < 1e-9);
    }
}
