//! The savings ledger: what `auto` saved against each decision's baseline (the model the
//! request would have gone to without it), and whether quality held — the served policy's
//! mean label next to an off-policy (self-normalised inverse-propensity) estimate of the
//! baseline's quality on the same traffic, with a 95 % bootstrap interval of the difference.
//! The baseline's quality can only be estimated from requests that were served by the baseline
//! (by the policy's choice or by exploration), weighed by the inverse of the probability the
//! policy had of serving it; until enough of them are labelled the ledger says how many more it
//! needs instead of a number.

use crate::hash::{mix, GAMMA};
use serde::Serialize;

/// Labelled requests served by the baseline needed before its quality is estimated.
pub const MIN_BASELINE_LABELS: usize = 10;
/// Labelled `auto` requests needed before the served quality is estimated.
pub const MIN_LABELS: usize = 30;
/// Bootstrap resamples of the interval.
const RESAMPLES: usize = 1000;

/// One `auto` request as the ledger reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    pub cost_usd: f64,
    pub baseline_cost_usd: f64,
    /// Whether the served model is the decision's baseline, and the probability the policy had
    /// of serving it.
    pub on_baseline: bool,
    pub propensity: f64,
    /// The request's label (a judge or user score in [0, 1]), if any.
    pub quality: Option<f64>,
}

/// The ledger over a set of requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ledger {
    pub requests: usize,
    pub cost_usd: f64,
    pub baseline_cost_usd: f64,
    pub saved_usd: f64,
    /// `saved_usd / baseline_cost_usd` (0 without baseline cost).
    pub saved_share: f64,
    pub quality: Quality,
}

/// The quality side of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Quality {
    /// Served mean label, estimated baseline quality and the difference (served − baseline)
    /// with its 95 % interval.
    Estimated {
        labels: usize,
        baseline_labels: usize,
        served: f64,
        baseline: f64,
        difference: f64,
        low: f64,
        high: f64,
    },
    /// Not enough labels yet: how many there are and how many more are needed.
    NotEnoughLabels {
        labels: usize,
        baseline_labels: usize,
        needed: usize,
        message: String,
    },
}

/// The ledger of `entries`; the interval's resamples are drawn with `seed`.
pub fn ledger(entries: &[Entry], seed: u64) -> Ledger {
    let cost: f64 = entries.iter().map(|e| e.cost_usd).sum();
    let baseline: f64 = entries.iter().map(|e| e.baseline_cost_usd).sum();
    let labelled: Vec<&Entry> = entries.iter().filter(|e| e.quality.is_some()).collect();
    let baseline_labels = labelled.iter().filter(|e| e.on_baseline).count();
    let needed = MIN_LABELS
        .saturating_sub(labelled.len())
        .max(MIN_BASELINE_LABELS.saturating_sub(baseline_labels));
    let quality = if needed > 0 {
        Quality::NotEnoughLabels {
            labels: labelled.len(),
            baseline_labels,
            needed,
            message: format!(
                "not enough labels yet: {} labelled auto requests ({} on the baseline); the estimate needs {MIN_LABELS} and {MIN_BASELINE_LABELS} on the baseline",
                labelled.len(),
                baseline_labels
            ),
        }
    } else {
        let (served, base) = estimate(&labelled);
        let mut diffs: Vec<f64> = (0..RESAMPLES)
            .filter_map(|r| {
                let mut state = mix(seed ^ (r as u64).wrapping_mul(GAMMA));
                let sample: Vec<&Entry> = (0..labelled.len())
                    .map(|_| {
                        state = mix(state.wrapping_add(GAMMA));
                        labelled[(state % labelled.len() as u64) as usize]
                    })
                    .collect();
                let (s, b) = estimate(&sample);
                b.map(|b| s - b)
            })
            .collect();
        diffs.sort_by(f64::total_cmp);
        let at = |q: f64| {
            diffs
                .get(((diffs.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        let base = base.unwrap_or(f64::NAN);
        Quality::Estimated {
            labels: labelled.len(),
            baseline_labels,
            served: round4(served),
            baseline: round4(base),
            difference: round4(served - base),
            low: round4(at(0.025)),
            high: round4(at(0.975)),
        }
    };
    Ledger {
        requests: entries.len(),
        cost_usd: cost,
        baseline_cost_usd: baseline,
        saved_usd: baseline - cost,
        saved_share: if baseline > 0.0 {
            round4((baseline - cost) / baseline)
        } else {
            0.0
        },
        quality,
    }
}

/// (mean label of the served policy, self-normalised IPS estimate of the baseline's).
fn estimate(labelled: &[&Entry]) -> (f64, Option<f64>) {
    let n = labelled.len().max(1) as f64;
    let served = labelled.iter().filter_map(|e| e.quality).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for e in labelled.iter().filter(|e| e.on_baseline) {
        let w = 1.0 / e.propensity.max(1e-6);
        num += w * e.quality.unwrap_or(0.0);
        den += w;
    }
    (served, (den > 0.0).then(|| num / den))
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(on_baseline: bool, propensity: f64, quality: Option<f64>) -> Entry {
        Entry {
            cost_usd: if on_baseline { 0.01 } else { 0.001 },
            baseline_cost_usd: 0.01,
            on_baseline,
            propensity,
            quality,
        }
    }

    #[test]
    fn the_counterfactual_cost_and_the_share_saved() {
        // 3 requests on the baseline ($0.01 each), 7 on a tenth of its price.
        let entries: Vec<Entry> = (0..10).map(|i| entry(i < 3, 1.0, None)).collect();
        let l = ledger(&entries, 1);
        assert!((l.baseline_cost_usd - 0.10).abs() < 1e-12);
        assert!((l.cost_usd - 0.037).abs() < 1e-12);
        assert!((l.saved_usd - 0.063).abs() < 1e-12);
        assert_eq!(l.saved_share, 0.63);
        match l.quality {
            Quality::NotEnoughLabels {
                labels: 0, needed, ..
            } => assert_eq!(needed, MIN_LABELS),
            q => panic!("{q:?}"),
        }
    }

    #[test]
    fn the_baseline_quality_is_weighted_by_inverse_propensity_with_an_interval() {
        // The baseline serves 20 % of requests by exploration (propensity 0.2) and is always
        // right; the cheap model serves the rest (propensity 0.8) and is right 3 times in 4.
        let mut entries = vec![];
        for i in 0..200 {
            if i % 5 == 0 {
                entries.push(entry(true, 0.2, Some(1.0)));
            } else {
                entries.push(entry(false, 0.8, Some(if i % 4 == 0 { 0.0 } else { 1.0 })));
            }
        }
        let l = ledger(&entries, 7);
        let Quality::Estimated {
            served,
            baseline,
            difference,
            low,
            high,
            baseline_labels,
            ..
        } = l.quality
        else {
            panic!("{:?}", l.quality)
        };
        assert_eq!(baseline_labels, 40);
        assert_eq!(baseline, 1.0);
        // 160 cheap requests, 40 of them wrong (i % 4 == 0 and i % 5 != 0): served 0.8.
        assert!((served - 0.8).abs() < 1e-9, "{served}");
        assert!((difference + 0.2).abs() < 1e-9);
        assert!(
            low < difference && difference < high && high < 0.0,
            "{low} {high}"
        );
        // Deterministic for a seed.
        assert_eq!(ledger(&entries, 7), l);
    }

    #[test]
    fn too_few_baseline_labels_say_how_many_are_needed() {
        let mut entries: Vec<Entry> = (0..40).map(|_| entry(false, 0.9, Some(1.0))).collect();
        entries.extend((0..4).map(|_| entry(true, 0.1, Some(1.0))));
        match ledger(&entries, 1).quality {
            Quality::NotEnoughLabels {
                needed,
                baseline_labels: 4,
                ..
            } => assert_eq!(needed, MIN_BASELINE_LABELS - 4),
            q => panic!("{q:?}"),
        }
    }
}
