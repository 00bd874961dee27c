//! Exploration (`[auto] explore`): with a configured probability a decision serves a drawn
//! non-top eligible candidate instead of the top one, so that candidates the predictor
//! undervalues still get outcomes. The draw favours the candidates most likely to be better
//! than the top one where the request is: each weighs its chance of having the higher utility
//! (quality − cost_weight × relative cost, before the uncertainty discount) given both
//! predictions' standard errors, `Φ((u − u_top) / sqrt(se² + se_top²))`, and at least
//! [`FLOOR`]. A newly added model on its prior (standard error of one label) or a model not yet
//! tried on a topic is explored where it could win; one known to lose there (a small model on
//! hard law questions) only at the floor, so exploration spends its share where an outcome can
//! change a decision and costs little quality. Every decision records the propensity
//! of the served model (the probability the policy had of choosing it), which off-policy
//! evaluation and training need to correct for how traffic was routed. A request opts out
//! with `metadata.explore = false` (or `"off"`); an hourly cap on the explored requests'
//! predicted cost stops exploring for the rest of the clock hour. Onboarding (`[auto]
//! onboard`) adds a share for candidates the artifact has few outcomes of, drawn the same way.

use crate::clock::HourlyBudget;
use crate::config::auto::Explore;
use crate::format::request::ChatRequest;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use switchyard_learn::hash::{mix, GAMMA};
use switchyard_learn::schema::Draw;

/// The least weight of an eligible candidate in the draw, next to chances of being better in
/// [0, 1]: a candidate predicted to lose keeps a positive propensity, so off-policy evaluation
/// can still see it chosen.
pub const FLOOR: f64 = 0.05;

/// What the draw knows of a candidate: its utility before the uncertainty discount (its score
/// plus its penalty), that prediction's standard error, and how many outcomes of it the
/// artifact was trained on (0 on a prior).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prospect {
    pub utility: f64,
    pub standard_error: f64,
    pub outcomes: usize,
}

/// A non-top candidate's weight in the draw: its chance of a higher utility than the top
/// candidate's, with both estimates normal (`Φ` by the logistic approximation
/// `1 / (1 + exp(−1.702 x))`, within 0.01), at least [`FLOOR`].
pub fn weight(candidate: Prospect, top: Prospect) -> f64 {
    let spread = candidate.standard_error.hypot(top.standard_error).max(1e-9);
    let z = (candidate.utility - top.utility) / spread;
    (1.0 / (1.0 + (-1.702 * z).exp())).max(FLOOR)
}

/// The exploration state of a loaded learned router.
pub struct Explorer {
    config: Explore,
    seed: u64,
    draws: AtomicU64,
    /// Predicted USD spent on explored requests this clock hour.
    spent: HourlyBudget,
    /// Decisions that served an explored candidate.
    pub explored: AtomicU64,
}

impl Explorer {
    pub fn new(config: Explore) -> Explorer {
        let seed = config.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Explorer {
            config,
            seed,
            draws: AtomicU64::new(0),
            spent: HourlyBudget::default(),
            explored: AtomicU64::new(0),
        }
    }

    /// The exploration settings (`[auto] explore`, its budget, seed and onboarding).
    pub fn settings(&self) -> &Explore {
        &self.config
    }

    /// A uniform number in [0, 1): draw n of a SplitMix64 stream started at the mixed seed.
    /// (Started at `(seed + n) × γ`, seed s + 1's draws were seed s's shifted by one: the
    /// simulator's seeds 11, 12, 13 and 20 read one sequence of draws at different offsets, and
    /// each explored 49 of its first 600 decisions.)
    fn uniform(&self) -> f64 {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let z = mix(mix(self.seed).wrapping_add(n.wrapping_add(1).wrapping_mul(GAMMA)));
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Applies exploration to a ranked chain of eligible candidates (the top first): either
    /// leaves it or moves one drawn non-top candidate to the front. `cost_of` is a candidate's
    /// predicted cost, charged to the hourly budget; `estimate_of` its utility, standard
    /// error ([`weight`]) and outcomes in the artifact.
    ///
    /// One uniform draw decides: below `share`, a non-top candidate drawn by weight; then, when
    /// some non-top candidates have fewer than `onboard_outcomes` outcomes (new ones), with
    /// probability `onboard` one of those drawn by weight; otherwise the top. A new candidate's
    /// propensity is the sum of both ways of being chosen.
    pub fn apply<T>(
        &self,
        req: &ChatRequest,
        chain: &mut Vec<T>,
        cost_of: impl Fn(&T) -> f64,
        estimate_of: impl Fn(&T) -> Prospect,
    ) -> Draw {
        let (share, onboard) = (self.config.share, self.config.onboard);
        let off = |why: Option<&'static str>| Draw {
            explored: false,
            onboarding: false,
            propensity: 1.0,
            skipped: why.map(Into::into),
        };
        if share <= 0.0 && onboard <= 0.0 {
            return off(None);
        }
        if chain.len() < 2 {
            return off(Some("one eligible candidate"));
        }
        if opted_out(req.metadata.get("explore")) {
            return off(Some("opted out (metadata.explore)"));
        }
        if !self.spent.allows(self.config.budget_usd_per_hour) {
            return off(Some("hourly exploration budget spent"));
        }
        let estimates: Vec<Prospect> = chain.iter().map(&estimate_of).collect();
        let new: Vec<bool> = estimates[1..]
            .iter()
            .map(|e| e.outcomes < self.config.onboard_outcomes)
            .collect();
        // The onboarding share applies when a non-top candidate is new.
        let onboarded = if new.contains(&true) { onboard } else { 0.0 };
        let u = self.uniform();
        if u >= share + onboarded {
            return Draw {
                explored: false,
                onboarding: false,
                propensity: 1.0 - share - onboarded,
                skipped: None,
            };
        }
        let weights: Vec<f64> = estimates[1..]
            .iter()
            .map(|e| weight(*e, estimates[0]))
            .collect();
        let total: f64 = weights.iter().sum();
        let new_weight: f64 = weights
            .iter()
            .zip(&new)
            .filter(|(_, n)| **n)
            .map(|(w, _)| w)
            .sum();
        let onboarding = u >= share;
        // The draw among the non-top candidates: all by weight, or the new ones by weight.
        let pool: Vec<f64> = weights
            .iter()
            .zip(&new)
            .map(|(w, n)| if !onboarding || *n { *w } else { 0.0 })
            .collect();
        let mut left = self.uniform() * pool.iter().sum::<f64>();
        let mut pick = pool.iter().rposition(|w| *w > 0.0).unwrap_or(0);
        for (i, w) in pool.iter().enumerate() {
            if left < *w {
                pick = i;
                break;
            }
            left -= w;
        }
        let served = chain.remove(pick + 1);
        self.spent.charge(cost_of(&served));
        chain.insert(0, served);
        self.explored.fetch_add(1, Ordering::Relaxed);
        let by_onboarding = if new[pick] {
            onboarded * weights[pick] / new_weight
        } else {
            0.0
        };
        Draw {
            explored: true,
            onboarding,
            propensity: share * weights[pick] / total + by_onboarding,
            skipped: None,
        }
    }
}

/// `metadata.explore` = false, "false", "off" or "no" opts a request out.
fn opted_out(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => !b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "false" | "off" | "no"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(metadata: Value) -> ChatRequest {
        ChatRequest::from_openai(
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "metadata": metadata}),
        )
        .unwrap()
    }

    fn explorer(share: f64, budget: Option<f64>) -> Explorer {
        onboarding_with_budget(share, 0.0, budget)
    }

    fn onboarding(share: f64, onboard: f64) -> Explorer {
        onboarding_with_budget(share, onboard, None)
    }

    fn onboarding_with_budget(share: f64, onboard: f64, budget: Option<f64>) -> Explorer {
        Explorer::new(Explore {
            share,
            budget_usd_per_hour: budget,
            seed: Some(3),
            onboard,
            onboard_outcomes: 100,
        })
    }

    #[test]
    fn explores_the_configured_share_uniformly_with_its_propensity() {
        let e = explorer(0.2, None);
        let req = request(json!({}));
        let mut served = [0usize; 3];
        for _ in 0..20_000 {
            let mut chain = vec![0, 1, 2];
            let d = e.apply(&req, &mut chain, |_| 0.0, |_| est(0.0, 0.0));
            served[chain[0]] += 1;
            assert_eq!(d.explored, chain[0] != 0);
            let want = if d.explored { 0.1 } else { 0.8 };
            assert!((d.propensity - want).abs() < 1e-12, "{d:?}");
            let mut sorted = chain.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1, 2], "the chain keeps every candidate");
        }
        let share = |i: usize| served[i] as f64 / 20_000.0;
        assert!((share(0) - 0.8).abs() < 0.02, "{served:?}");
        assert!((share(1) - 0.1).abs() < 0.015 && (share(2) - 0.1).abs() < 0.015);
        assert_eq!(
            e.explored.load(Ordering::Relaxed),
            (served[1] + served[2]) as u64
        );
    }

    #[test]
    fn nearby_seeds_draw_unrelated_streams() {
        let seeded = |seed: u64| {
            Explorer::new(Explore {
                seed: Some(seed),
                ..explorer(0.1, None).config
            })
        };
        let draws = |seed: u64| -> Vec<u64> {
            let e = seeded(seed);
            (0..1000).map(|_| e.uniform().to_bits()).collect()
        };
        let first = draws(11);
        for seed in [12, 13, 20] {
            let shared = draws(seed).iter().filter(|d| first.contains(d)).count();
            assert_eq!(shared, 0, "seed {seed} repeats {shared} of seed 11's draws");
        }
        // Each seed draws below 0.1 a tenth of the time, within sampling error.
        for seed in 11..31 {
            let e = seeded(seed);
            let below = (0..20_000).filter(|_| e.uniform() < 0.1).count();
            assert!(
                (below as f64 / 20_000.0 - 0.1).abs() < 0.007,
                "seed {seed}: {below}"
            );
        }
    }

    /// An estimate for tests.
    fn est(utility: f64, standard_error: f64) -> Prospect {
        Prospect {
            utility,
            standard_error,
            outcomes: 1000,
        }
    }

    #[test]
    fn onboarding_adds_a_share_for_candidates_with_few_outcomes() {
        // Candidate 1 is known (1,000 outcomes), candidate 2 new (10) and as good as the top
        // but uncertain (weight 1/2); candidate 3 new and known to lose (weight FLOOR).
        let e = onboarding(0.1, 0.2);
        let req = request(json!({}));
        let estimates = [
            est(0.8, 0.02),
            est(0.8, 0.2),
            Prospect {
                outcomes: 10,
                ..est(0.8, 0.2)
            },
            Prospect {
                outcomes: 10,
                ..est(0.2, 0.02)
            },
        ];
        let (total, new) = (0.5 + 0.5 + FLOOR, 0.5 + FLOOR);
        let want = [
            1.0 - 0.1 - 0.2,
            0.1 * 0.5 / total,
            0.1 * 0.5 / total + 0.2 * 0.5 / new,
            0.1 * FLOOR / total + 0.2 * FLOOR / new,
        ];
        assert!((want.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let draws = 40_000;
        let mut served = [0usize; 4];
        let mut onboarded = 0;
        for _ in 0..draws {
            let mut chain = vec![0usize, 1, 2, 3];
            let d = e.apply(&req, &mut chain, |_| 0.0, |c| estimates[*c]);
            assert!(
                (d.propensity - want[chain[0]]).abs() < 1e-9,
                "{d:?} {chain:?}"
            );
            assert!(
                !d.onboarding || matches!(chain[0], 2 | 3),
                "{d:?} {chain:?}"
            );
            onboarded += usize::from(d.onboarding);
            served[chain[0]] += 1;
        }
        for (i, w) in want.iter().enumerate() {
            let got = served[i] as f64 / draws as f64;
            assert!((got - w).abs() < 0.01, "candidate {i}: {got} against {w}");
        }
        let got = onboarded as f64 / draws as f64;
        assert!((got - 0.2).abs() < 0.01, "{got}");
        // Once every non-top candidate has enough outcomes, only `explore` remains.
        let known = [est(0.8, 0.02), est(0.8, 0.2)];
        let d = (0..1000)
            .map(|_| e.apply(&req, &mut vec![0usize, 1], |_| 0.0, |c| known[*c]))
            .find(|d| !d.explored)
            .unwrap();
        assert!((d.propensity - 0.9).abs() < 1e-12, "{d:?}");
        // Onboarding alone (explore off) still explores, and opting out still stops it.
        let alone = onboarding(0.0, 0.3);
        let d = (0..1000)
            .map(|_| alone.apply(&req, &mut vec![0usize, 2, 3], |_| 0.0, |c| estimates[*c]))
            .find(|d| d.explored)
            .unwrap();
        assert!(d.onboarding, "{d:?}");
        let opted_out = alone.apply(
            &request(json!({"explore": false})),
            &mut vec![0usize, 2],
            |_| 0.0,
            |c| estimates[*c],
        );
        assert_eq!(
            opted_out.skipped.as_deref(),
            Some("opted out (metadata.explore)")
        );
    }

    #[test]
    fn the_weight_is_the_chance_of_beating_the_top_at_least_the_floor() {
        let top = est(0.8, 0.03);
        // As good as the top: even odds; far below it with small errors: the floor.
        assert!((weight(est(0.8, 0.1), top) - 0.5).abs() < 1e-12);
        assert_eq!(weight(est(0.3, 0.05), top), FLOOR);
        // 0.1 below with a standard error of 0.1 (a few labels): one in five or so (Φ(−0.96) = 0.17).
        let thin = weight(est(0.7, 0.1), top);
        assert!((thin - 0.17).abs() < 0.01, "{thin}");
        // The same gap known from many labels: much less likely to be better.
        assert!(weight(est(0.7, 0.02), top) < thin / 3.0);
        // No uncertainty anywhere: better or not, no division by zero.
        assert_eq!(weight(est(0.7, 0.0), est(0.8, 0.0)), FLOOR);
        assert!((weight(est(0.9, 0.0), est(0.8, 0.0)) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn exploration_favours_the_candidate_that_may_beat_the_top() {
        // Candidate 1 is known to lose (weight FLOOR), candidate 2 is as good as the top but
        // uncertain (weight 1/2).
        let e = explorer(1.0, None);
        let req = request(json!({}));
        let mut served = [0usize; 3];
        let estimates = [est(0.8, 0.02), est(0.2, 0.02), est(0.8, 0.2)];
        let total = FLOOR + 0.5;
        for _ in 0..11_000 {
            let mut chain = vec![0usize, 1, 2];
            let d = e.apply(&req, &mut chain, |_| 0.0, |c| estimates[*c]);
            let want = if chain[0] == 1 { FLOOR } else { 0.5 } / total;
            assert!((d.propensity - want).abs() < 1e-9, "{d:?}");
            served[chain[0]] += 1;
        }
        assert!(
            (served[2] as f64 / 11_000.0 - 0.5 / total).abs() < 0.02,
            "{served:?}"
        );
    }

    #[test]
    fn off_opted_out_single_candidate_and_budget_leave_the_top() {
        let mut chain = vec![0, 1];
        let d =
            explorer(0.0, None).apply(&request(json!({})), &mut chain, |_| 1.0, |_| est(0.0, 0.0));
        assert_eq!((d.explored, d.propensity, d.skipped), (false, 1.0, None));
        for opt_out in [json!(false), json!("off"), json!("No")] {
            let d = explorer(1.0, None).apply(
                &request(json!({ "explore": opt_out })),
                &mut chain,
                |_| 1.0,
                |_| est(0.0, 0.0),
            );
            assert_eq!(d.skipped.as_deref(), Some("opted out (metadata.explore)"));
        }
        let d = explorer(1.0, None).apply(
            &request(json!({})),
            &mut vec![0],
            |_| 1.0,
            |_| est(0.0, 0.0),
        );
        assert_eq!(d.skipped.as_deref(), Some("one eligible candidate"));
        // A budget of 2.5 USD at 1 USD per explored request: three explorations, then none.
        let e = explorer(1.0, Some(2.5));
        let explored: Vec<bool> = (0..5)
            .map(|_| {
                e.apply(
                    &request(json!({})),
                    &mut vec![0, 1],
                    |_| 1.0,
                    |_| est(0.0, 0.0),
                )
                .explored
            })
            .collect();
        assert_eq!(explored, vec![true, true, true, false, false]);
        assert_eq!(chain, vec![0, 1]);
    }
}
