//! One evaluation subset (all prompts, a source, a held-out subject): every router's curve,
//! its area and bootstrap interval, the single models and the random mix.

use super::*;

/// Mean outcome of a choice vector over a (re)sample of prompt indices.
fn point(choice: &[usize], sample: &[usize], prompts: &[&Prompt], strong: usize) -> Point {
    let n = sample.len().max(1) as f64;
    let (mut s, mut c, mut q) = (0.0, 0.0, 0.0);
    for &i in sample {
        let m = choice[i];
        s += f64::from(u8::from(m == strong));
        c += prompts[i].cost[m];
        q += prompts[i].quality[m];
    }
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
}

fn ends_of(singles: &[Point], cheap: usize, strong: usize) -> Ends {
    Ends {
        cheap: singles[cheap],
        strong: singles[strong],
    }
}

fn best_single(singles: &[Point]) -> Point {
    *singles
        .iter()
        .max_by(|a, b| a.quality.total_cmp(&b.quality))
        .expect("at least one candidate")
}

/// A deterministic resample with replacement (SplitMix64 from the seed and round).
pub(super) fn resample(subset: &[usize], seed: u64, round: u64) -> Vec<usize> {
    let mut state = seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..subset.len())
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            subset[(z % subset.len() as u64) as usize]
        })
        .collect()
}

pub(super) fn summarize_curve(
    curve: &Curve,
    sample: &[usize],
    prompts: &[&Prompt],
    models: usize,
    cheap: usize,
    strong: usize,
) -> (Vec<Point>, Summary, Vec<Point>) {
    let singles: Vec<Point> = (0..models)
        .map(|m| point(&vec![m; prompts.len()], sample, prompts, strong))
        .collect();
    let points: Vec<Point> = curve
        .choices
        .iter()
        .map(|c| point(c, sample, prompts, strong))
        .collect();
    let s = summarize(
        &points,
        &ends_of(&singles, cheap, strong),
        &best_single(&singles),
    );
    (points, s, singles)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate_subset(
    name: &str,
    subset: &[usize],
    prompts: &[&Prompt],
    curves: &[Curve],
    oracle: &[usize],
    models: usize,
    (cheap, strong): (usize, usize),
    seed: u64,
    rounds: usize,
) -> SubsetResult {
    let mut results = Vec::new();
    let mut singles = Vec::new();
    for c in curves {
        let (points, s, si) = summarize_curve(c, subset, prompts, models, cheap, strong);
        singles = si;
        results.push((c.name.clone(), points, s));
    }
    let ends = ends_of(&singles, cheap, strong);
    let random_mix = summarize(&[], &ends, &best_single(&singles));
    // Bootstrap the learned router's figures (curve 0), resampling prompts.
    let mut draws: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        let sample = resample(subset, seed, round as u64);
        let (_, s, _) = summarize_curve(&curves[0], &sample, prompts, models, cheap, strong);
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
        oracle: point(oracle, subset, prompts, strong),
        singles,
        curves: results,
        random_mix,
        ci,
    }
}
