//! Fitting the per-candidate linear models (ridge regression on the shared prompt features)
//! and measuring predictions on the validation split.

use switchyard_learn::artifact::{features, Blend, Linear, GOOD_ANSWER};
use switchyard_learn::knn::knn_rate;
use switchyard_learn::memory::{leave_out_same, Memory};
use switchyard_learn::schema::manifest::Classification;

/// One example: features, quality, tokens.
pub struct Example {
    pub x: Vec<f64>,
    pub quality: f64,
    pub output_tokens: u64,
}

impl Example {
    pub fn new(embedding: &[f32], quality: f64, input_tokens: u64, output_tokens: u64) -> Example {
        Example {
            x: features(embedding, input_tokens),
            quality,
            output_tokens,
        }
    }

    /// Appends a request's metadata indicators to the features.
    pub fn with_metadata(mut self, metadata: &[f64]) -> Example {
        self.x.extend_from_slice(metadata);
        self
    }

    pub fn good(&self) -> f64 {
        f64::from(u8::from(self.quality >= GOOD_ANSWER))
    }

    /// The example with only its first `width` features (the prompt's, without metadata).
    pub fn prompt_part(&self, width: usize) -> Example {
        Example {
            x: self.x[..width].to_vec(),
            quality: self.quality,
            output_tokens: self.output_tokens,
        }
    }

    /// An example of the features after the first `width` (the metadata indicators) with
    /// `target` as its quality: a residual to fit the metadata's effect on.
    pub fn metadata_part(&self, width: usize, target: f64) -> Example {
        Example {
            x: self.x[width..].to_vec(),
            quality: target,
            output_tokens: 0,
        }
    }

    /// The output-token model's target.
    pub fn log_output(&self) -> f64 {
        (1.0 + self.output_tokens as f64).ln()
    }
}

/// Ridge strengths tried; the one with the lowest validation squared error wins.
pub const LAMBDAS: [f64; 10] = [
    1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0,
];

/// Folds of the cross-validation that picks the quality model's ridge strengths.
pub const FOLDS: usize = 5;

/// K-fold cross-validated ridge strength (`fold[i]` in `0..FOLDS` for each example): each
/// strength is fitted on the other folds and predicts the held-out one (through `link`); the
/// one with the lowest mean squared error wins.
#[allow(
    clippy::expect_used,
    reason = "the grids of strengths are non-empty constants"
)]
pub fn cross_validate(
    train: &[&Example],
    fold: &[usize],
    (target, link): (Target, Link),
    lambdas: &[f64],
) -> f64 {
    let n = train.len();
    let mut oof = vec![vec![0.0; n]; lambdas.len()];
    for f in 0..FOLDS {
        let (held, rest): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| fold[i] == f);
        if held.is_empty() || rest.is_empty() {
            continue;
        }
        let sub: Vec<&Example> = rest.iter().map(|&i| train[i]).collect();
        let ones = vec![1.0; sub.len()];
        let gram = Gram::new(&sub, &ones);
        for (l, &lambda) in lambdas.iter().enumerate() {
            let m = gram.ridge(&sub, target, lambda);
            for &i in &held {
                oof[l][i] = link(m.value(&train[i].x));
            }
        }
    }
    let mse: Vec<f64> = oof
        .iter()
        .map(|p| {
            p.iter()
                .zip(train)
                .map(|(p, e)| (p - target(e)).powi(2))
                .sum::<f64>()
                / n.max(1) as f64
        })
        .collect();
    let chosen = (0..lambdas.len())
        .min_by(|&a, &b| mse[a].total_cmp(&mse[b]))
        .expect("lambdas is not empty");
    lambdas[chosen]
}

/// Ridge strengths tried for the metadata effect (a handful of indicators, fitted on residuals).
pub const EFFECT_LAMBDAS: [f64; 6] = [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0];

/// A prompt's kNN rate for a candidate without the prompt's own memory row: what the
/// neighbours alone say, as the gateway would compute it for an unseen prompt.
pub fn knn_left_out(
    memory: &Memory,
    blend: &Blend,
    candidate: (usize, f64),
    embedding: &[f32],
) -> f64 {
    let mut similarities = memory.similarities(embedding);
    leave_out_same(&mut similarities);
    let nearest = similarities.iter().copied().fold(f32::MIN, f32::max);
    let ranked = memory.ranked(&similarities, 2 * blend.k + 32);
    knn_rate(memory, blend, candidate, (&ranked, f64::from(nearest))).rate
}

/// The weighted, centred Gram matrix of a candidate's training features, shared by every ridge
/// strength (and by every target fitted with the same example weights).
pub struct Gram<'a> {
    d: usize,
    weights: &'a [f64],
    mean: Vec<f64>,
    xtx: Vec<f64>,
    /// Columns from here on (metadata indicators) get a light penalty, at most 1.
    light_from: usize,
}

impl<'a> Gram<'a> {
    /// `weights`: one per example (all 1 for plain least squares).
    pub fn new(train: &[&Example], weights: &'a [f64]) -> Gram<'a> {
        let d = train[0].x.len();
        let n: f64 = weights.iter().sum();
        let mut mean = vec![0.0; d];
        for (e, w) in train.iter().zip(weights) {
            for (m, v) in mean.iter_mut().zip(&e.x) {
                *m += w * v / n;
            }
        }
        let mut xtx = vec![0.0; d * d];
        let mut c = vec![0.0; d];
        for (e, w) in train.iter().zip(weights) {
            for (ci, (v, m)) in c.iter_mut().zip(e.x.iter().zip(&mean)) {
                *ci = w.sqrt() * (v - m);
            }
            for i in 0..d {
                let ci = c[i];
                let row = &mut xtx[i * d..i * d + i + 1];
                for (r, cj) in row.iter_mut().zip(&c[..=i]) {
                    *r += ci * cj;
                }
            }
        }
        for i in 0..d {
            for j in 0..i {
                xtx[j * d + i] = xtx[i * d + j];
            }
        }
        Gram {
            d,
            weights,
            mean,
            xtx,
            light_from: d,
        }
    }

    /// Penalises the columns from `col` on (a few metadata indicators) by at most 1 instead of
    /// the ridge strength, so that a signal such as a caller's emotion is not shrunk away with
    /// the hundreds of embedding weights.
    pub fn light_penalty_from(mut self, col: usize) -> Gram<'a> {
        self.light_from = col.min(self.d);
        self
    }

    /// Ridge regression of `target` on the features (intercept not penalised).
    pub fn ridge(&self, train: &[&Example], target: Target, lambda: f64) -> Linear {
        let d = self.d;
        let n: f64 = self.weights.iter().sum();
        let ybar = train
            .iter()
            .zip(self.weights)
            .map(|(e, w)| w * target(e))
            .sum::<f64>()
            / n;
        let mut xty = vec![0.0; d];
        for (e, w) in train.iter().zip(self.weights) {
            let y = w * (target(e) - ybar);
            for ((s, v), m) in xty.iter_mut().zip(&e.x).zip(&self.mean) {
                *s += (v - m) * y;
            }
        }
        let mut a = self.xtx.clone();
        for i in 0..d {
            a[i * d + i] += if i < self.light_from {
                lambda
            } else {
                lambda.min(1.0)
            };
        }
        let w = cholesky_solve(&mut a, d, xty);
        let bias = ybar - w.iter().zip(&self.mean).map(|(w, m)| w * m).sum::<f64>();
        Linear { weights: w, bias }
    }
}

/// Example weights that give every group (a benchmark, a subject) the same total weight, averaging 1.
pub fn balanced_weights(groups: &[&str]) -> Vec<f64> {
    let mut counts = std::collections::BTreeMap::new();
    for g in groups {
        *counts.entry(*g).or_insert(0usize) += 1;
    }
    let (n, k) = (groups.len() as f64, counts.len() as f64);
    groups.iter().map(|g| n / (k * counts[g] as f64)).collect()
}

/// Solves `A w = b` for symmetric positive definite `A` (overwritten by its Cholesky factor).
fn cholesky_solve(a: &mut [f64], d: usize, mut b: Vec<f64>) -> Vec<f64> {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        let l = s.max(1e-12).sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / l;
        }
    }
    for i in 0..d {
        let s = b[i] - (0..i).map(|k| a[i * d + k] * b[k]).sum::<f64>();
        b[i] = s / a[i * d + i];
    }
    for i in (0..d).rev() {
        let s = b[i] - (i + 1..d).map(|k| a[k * d + i] * b[k]).sum::<f64>();
        b[i] = s / a[i * d + i];
    }
    b
}

/// What a fit predicts from an example, and the link its predictions pass through.
pub type Target = fn(&Example) -> f64;
pub type Link = fn(f64) -> f64;

/// Fits `target` for every ridge strength and keeps the one with the lowest validation mean
/// squared error (predictions passed through `link`): (model, strength, error).
#[allow(
    clippy::expect_used,
    reason = "the grids of strengths are non-empty constants"
)]
pub fn fit_best(
    gram: &Gram,
    train: &[&Example],
    (val, val_weights): (&[&Example], &[f64]),
    (target, link): (Target, Link),
    lambdas: &[f64],
) -> (Linear, f64, f64) {
    lambdas
        .iter()
        .map(|&l| {
            let m = gram.ridge(train, target, l);
            let mse = val
                .iter()
                .zip(val_weights)
                .map(|(e, w)| w * (link(m.value(&e.x)) - target(e)).powi(2))
                .sum::<f64>()
                / val_weights.iter().sum::<f64>().max(1e-12);
            (m, l, mse)
        })
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .expect("LAMBDAS is not empty")
}

/// Accuracy, AUC, Brier score, expected calibration error (10 bins) and log-loss of predicted
/// good-answer probabilities against outcomes.
pub fn metrics(scored: &[(f64, bool)]) -> Classification {
    let n = scored.len();
    if n == 0 {
        return Classification::default();
    }
    let nf = n as f64;
    let accuracy = scored.iter().filter(|(p, y)| (*p >= 0.5) == *y).count() as f64 / nf;
    let brier = scored
        .iter()
        .map(|(p, y)| (p - f64::from(u8::from(*y))).powi(2))
        .sum::<f64>()
        / nf;
    let log_loss = scored
        .iter()
        .map(|(p, y)| {
            let p = p.clamp(1e-7, 1.0 - 1e-7);
            if *y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum::<f64>()
        / nf;
    let mut ece = 0.0;
    for b in 0..10 {
        let (lo, hi) = (b as f64 / 10.0, (b + 1) as f64 / 10.0);
        let bin: Vec<_> = scored
            .iter()
            .filter(|(p, _)| *p >= lo && (*p < hi || (b == 9 && *p <= hi)))
            .collect();
        if !bin.is_empty() {
            let conf = bin.iter().map(|(p, _)| p).sum::<f64>() / bin.len() as f64;
            let acc = bin.iter().filter(|(_, y)| *y).count() as f64 / bin.len() as f64;
            ece += bin.len() as f64 / nf * (conf - acc).abs();
        }
    }
    Classification {
        n,
        positive_rate: Some(round(scored.iter().filter(|(_, y)| *y).count() as f64 / nf)),
        accuracy: Some(round(accuracy)),
        auc: auc(scored).map(round),
        brier: Some(round(brier)),
        ece: Some(round(ece)),
        log_loss: Some(round(log_loss)),
        knn_part: None,
        linear_part: None,
    }
}

fn round(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// Area under the ROC curve (rank statistic, ties averaged); `None` with one class.
fn auc(scored: &[(f64, bool)]) -> Option<f64> {
    let mut v: Vec<(f64, bool)> = scored.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (pos, neg) = (
        v.iter().filter(|x| x.1).count() as f64,
        v.iter().filter(|x| !x.1).count() as f64,
    );
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1].0 == v[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += v[i..=j].iter().filter(|x| x.1).count() as f64 * avg_rank;
        i = j + 1;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_and_tied_scores() {
        assert_eq!(auc(&[(0.1, false), (0.9, true)]), Some(1.0));
        assert_eq!(auc(&[(0.5, false), (0.5, true)]), Some(0.5));
    }

    #[test]
    fn ridge_recovers_a_linear_signal_and_output_length_follows_content() {
        // Feature 0 says "essay" (long answers, often good), feature 1 is noise.
        let ex: Vec<Example> = (0..400)
            .map(|i| {
                let essay = i % 2 == 0;
                Example {
                    x: vec![if essay { 1.0 } else { -1.0 }, ((i * 7) % 11) as f64 / 11.0],
                    quality: if essay == (i % 3 != 0) { 1.0 } else { 0.0 },
                    output_tokens: if essay { 800 } else { 3 },
                }
            })
            .collect();
        let refs: Vec<&Example> = ex.iter().collect();
        let ones = vec![1.0; refs.len()];
        let g = Gram::new(&refs, &ones);
        let tokens = g.ridge(&refs, Example::log_output, 1.0);
        let predict = |x: &[f64]| tokens.value(x).exp() - 1.0;
        assert!(
            (predict(&[1.0, 0.5]) / 800.0 - 1.0).abs() < 0.1,
            "{}",
            predict(&[1.0, 0.5])
        );
        assert!(
            (predict(&[-1.0, 0.5]) - 3.0).abs() < 1.0,
            "{}",
            predict(&[-1.0, 0.5])
        );
        let (q, _, mse) = fit_best(
            &g,
            &refs,
            (&refs, &ones),
            (Example::good, |v| v.clamp(0.0, 1.0)),
            &[1.0, 10.0],
        );
        assert!(q.value(&[1.0, 0.5]) > q.value(&[-1.0, 0.5]) + 0.2);
        assert!(mse < 0.25);
        let scored: Vec<(f64, bool)> = refs
            .iter()
            .map(|e| (q.value(&e.x), e.good() > 0.5))
            .collect();
        assert!(metrics(&scored).auc.unwrap() > 0.6);
    }
}
