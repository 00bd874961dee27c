//! One evaluation subset (all prompts, a source, a held-out subject): every router's curve,
//! its area and bootstrap interval, the single models and the random mix.

use super::*;
use switchyard_learn::hash::{mix, GAMMA};

/// Prompts with a weight each (1, or 1 / prompts of its subject for subject-balanced figures).
pub(super) type Weighted<'a, 'b> = (&'a [&'b Prompt], &'a [f64]);

/// Weighted mean outcome of a choice vector over a (re)sample of prompt indices.
/// Strong share, mean cost and mean quality of `choice` over the prompts of `sample`.
pub(super) fn point(
    choice: &[usize],
    sample: &[usize],
    (prompts, w): Weighted,
    strong: usize,
) -> Point {
    let (mut s, mut c, mut q, mut total) = (0.0, 0.0, 0.0, 0.0);
    for &i in sample {
        let m = choice[i];
        s += w[i] * f64::from(u8::from(m == strong));
        c += w[i] * prompts[i].cost[m];
        q += w[i] * prompts[i].quality[m];
        total += w[i];
    }
    let n = if total > 0.0 { total } else { 1.0 };
    Point {
        strong_share: s / n,
        cost: c / n,
        quality: q / n,
    }
}

/// Everything computed for one subset of prompts (pooled or one benchmark).
pub(super) struct SubsetResult {
    pub(super) name: String,
    pub(super) n: usize,
    pub(super) singles: Vec<Point>,
    pub(super) oracle: Point,
    pub(super) curves: Vec<(String, Vec<Point>, Summary)>,
    pub(super) random_mix: Summary,
    pub(super) ci: BTreeMap<String, (f64, f64)>,
    /// Learned APGR minus the kNN baseline's (curve 1) on the same prompts.
    pub(super) margin_vs_knn: Option<f64>,
}

fn ends_of(singles: &[Point], anchors: Anchors) -> Ends {
    Ends {
        cheap: singles[anchors.cheap],
        strong: singles[anchors.strong],
    }
}

#[allow(
    clippy::expect_used,
    reason = "an eval has at least one candidate (checked when it starts)"
)]
fn best_single(singles: &[Point]) -> Point {
    *singles
        .iter()
        .max_by(|a, b| a.quality.total_cmp(&b.quality))
        .expect("at least one candidate")
}

/// A deterministic resample with replacement: a SplitMix64 stream started at a mix of the seed
/// and the round. (Started at `seed ^ round × γ`, with γ the stream's own increment, the stream of
/// round r + j was, for many seeds, round r's shifted by j draws: resamples of nearby rounds
/// shared almost all their draws, and the bootstrap intervals were too narrow and off centre.)
pub(crate) fn resample(subset: &[usize], seed: u64, round: u64) -> Vec<usize> {
    let mut state = mix(mix(seed) ^ mix(round.wrapping_add(GAMMA)));
    (0..subset.len())
        .map(|_| {
            state = state.wrapping_add(GAMMA);
            subset[(mix(state) % subset.len() as u64) as usize]
        })
        .collect()
}

pub(super) fn summarize_curve(
    curve: &Curve,
    sample: &[usize],
    prompts: Weighted,
    models: usize,
    anchors: Anchors,
) -> (Vec<Point>, Summary, Vec<Point>) {
    let strong = anchors.strong;
    let singles: Vec<Point> = (0..models)
        .map(|m| point(&vec![m; prompts.0.len()], sample, prompts, strong))
        .collect();
    let points: Vec<Point> = curve
        .choices
        .iter()
        .map(|c| point(c, sample, prompts, strong))
        .collect();
    let s = summarize(&points, &ends_of(&singles, anchors), &best_single(&singles));
    (points, s, singles)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate_subset(
    name: &str,
    subset: &[usize],
    prompts: Weighted,
    curves: &[Curve],
    oracle: &[usize],
    models: usize,
    anchors: Anchors,
    seed: u64,
    rounds: usize,
) -> SubsetResult {
    let mut results = Vec::new();
    let mut singles = Vec::new();
    for c in curves {
        let (points, s, si) = summarize_curve(c, subset, prompts, models, anchors);
        singles = si;
        results.push((c.name.clone(), points, s));
    }
    let ends = ends_of(&singles, anchors);
    let random_mix = summarize(&[], &ends, &best_single(&singles));
    // Bootstrap the learned router's figures (curve 0) and its APGR margin over the kNN
    // baseline (curve 1, paired: the same resample), resampling prompts.
    let margin = |a: &Summary, b: &Summary| a.apgr.zip(b.apgr).map(|(a, b)| a - b);
    let margin_vs_knn = results.get(1).and_then(|k| margin(&results[0].2, &k.2));
    let mut draws: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        let sample = resample(subset, seed, round as u64);
        let (_, s, _) = summarize_curve(&curves[0], &sample, prompts, models, anchors);
        if let Some(knn) = curves.get(1) {
            let (_, k, _) = summarize_curve(knn, &sample, prompts, models, anchors);
            if let Some(m) = margin(&s, &k) {
                draws.entry("apgr_margin_vs_knn").or_default().push(m);
            }
        }
        let figures = [
            ("apgr", s.apgr),
            ("cpt50_share", s.cpt50_share),
            ("cpt80_share", s.cpt80_share),
            ("cpt50_cost", s.cpt50_cost),
            ("cpt80_cost", s.cpt80_cost),
            ("aiq", Some(s.aiq)),
            (
                "quality_at_best_static_cost",
                Some(s.quality_at_best_static_cost),
            ),
            ("savings_at_95", s.savings_at_95),
        ];
        for (k, v) in figures {
            if let Some(v) = v {
                draws.entry(k).or_default().push(v);
            }
        }
    }
    let ci = draws
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            (
                k.to_string(),
                (
                    switchyard_learn::score::quantile(&v, 0.025),
                    switchyard_learn::score::quantile(&v, 0.975),
                ),
            )
        })
        .collect();
    SubsetResult {
        name: name.to_string(),
        n: subset.len(),
        oracle: point(oracle, subset, prompts, anchors.strong),
        singles,
        curves: results,
        random_mix,
        ci,
        margin_vs_knn,
    }
}
