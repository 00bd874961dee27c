//! A candidate's kNN good-answer rate for a prompt: the similarity-weighted rate of its
//! labelled neighbours in the outcome memory, shrunk towards its overall rate, with the
//! evidence and standard error exploration and scoring weigh.

use crate::memory::{Memory, Ranked, GOOD};
use serde::{Deserialize, Serialize};

/// How the kNN and linear parts are combined, and how support is measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Blend {
    /// Weight of the kNN rate in the quality prediction (the rest is the linear model).
    pub knn_weight: f64,
    /// Neighbours per candidate among the prompts labelled for it (fewer for a candidate with
    /// under `10 k` labelled prompts).
    pub k: usize,
    /// Pseudo-counts of the candidate's overall rate added to its neighbour counts.
    pub shrinkage: f64,
    /// Neighbours whose mean similarity is the decision's support.
    pub support_k: usize,
    /// Each neighbour counts `exp((its similarity − the nearest training prompt's) / tau)`:
    /// a candidate's labels from prompts far less similar than the closest one fade, and its
    /// overall rate takes their place. `None` (artifacts before this field): every neighbour
    /// counts 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity_tau: Option<f64>,
    /// How much a prediction resting on little evidence is discounted when scored: the score
    /// subtracts `pessimism × knn_weight × sqrt(q̃ (1 − q̃)) × spread`, that many standard
    /// errors of the blend's kNN part (q̃: the kNN rate smoothed by one good and one bad
    /// pseudo-label; spread: [`KnnRate::spread`]), so a cheap candidate known from a handful of
    /// labels near the prompt does not win on them (exploration gathers more). `None`
    /// (artifacts before this field): no discount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pessimism: Option<f64>,
}

/// The fewest neighbours a candidate's kNN rate is taken over (when it has that many rows).
const MIN_NEIGHBOURS: usize = 5;

/// The standard error of a kNN good-answer rate `q` resting on `evidence` summed neighbour
/// weights with the given `spread` ([`KnnRate::spread`]): the labels' standard deviation, taken
/// at the rate smoothed by one good and one bad pseudo-label (so a few labels that all agree
/// still leave wide uncertainty), times the spread.
pub(crate) fn standard_error(q: f64, evidence: f64, spread: f64) -> f64 {
    let smoothed = (q * evidence + 1.0) / (evidence + 2.0);
    (smoothed * (1.0 - smoothed)).sqrt() * spread
}

/// A candidate's kNN good-answer rate for a prompt ([`knn_rate`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnnRate {
    /// The similarity-weighted rate of its labelled neighbours, shrunk towards its overall rate.
    pub rate: f64,
    /// Labelled neighbours taken.
    pub neighbours: usize,
    /// Their summed similarity weights: how many labels as close as the nearest training
    /// prompt they are worth.
    pub evidence: f64,
    /// `sqrt(Σ w²) / (Σ w + shrinkage)`: the rate's standard error per unit of a label's
    /// standard deviation (a weighted mean of `n` equal weights has `sqrt(n) / n`). The overall
    /// rate the shrinkage pulls towards rests on all the candidate's rows; its variance is
    /// left out.
    pub spread: f64,
}

/// A candidate's kNN good-answer rate for a prompt: candidate `m` with overall rate
/// `base_rate`; the prompt's similarities to the memory rows (−∞ for a row left out), ranked
/// ([`Memory::ranked`]), and the nearest one's.
pub fn knn_rate(
    memory: &Memory,
    b: &Blend,
    (m, base_rate): (usize, f64),
    (ranked, nearest): (&Ranked, f64),
) -> KnnRate {
    // The nearest rows labelled for this candidate: `k`, or a tenth of its labelled rows when
    // it has few (at least MIN_NEIGHBOURS), so that a candidate with little data is still
    // judged by the prompts most like this one.
    let k = b.k.min((memory.labelled(m) / 10).max(MIN_NEIGHBOURS));
    let neighbours = ranked.nearest_labelled(memory, m, k);
    // Pseudo-counts in proportion to the neighbours taken, so a thin candidate's few
    // neighbours are not drowned by its overall rate.
    let shrinkage = b.shrinkage * k as f64 / b.k.max(1) as f64;
    let (good, n, squares) = neighbours
        .iter()
        .fold((0.0, 0.0, 0.0), |(g, t, q), (sim, row)| {
            let w = b
                .similarity_tau
                .map_or(1.0, |tau| ((f64::from(*sim) - nearest) / tau).exp());
            let hit = memory.label(*row, m) == GOOD;
            (g + if hit { w } else { 0.0 }, t + w, q + w * w)
        });
    let total = (n + shrinkage).max(1e-9);
    KnnRate {
        rate: (good + shrinkage * base_rate) / total,
        neighbours: neighbours.len(),
        evidence: n,
        spread: if neighbours.is_empty() {
            1.0
        } else {
            squares.sqrt() / total
        },
    }
}
