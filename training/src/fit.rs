//! Fitting the per-candidate predictors with linfa and measuring them on the validation split.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde_json::{json, Value};
use switchyard_learn::artifact::{features, Logistic, OutputTokens, GOOD_ANSWER};

/// One example: features, quality, tokens.
pub struct Example {
    pub x: Vec<f64>,
    pub quality: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Example {
    pub fn new(embedding: &[f32], quality: f64, input_tokens: u64, output_tokens: u64) -> Example {
        Example {
            x: features(embedding, input_tokens),
            quality,
            input_tokens,
            output_tokens,
        }
    }

    fn good(&self) -> bool {
        self.quality >= GOOD_ANSWER
    }
}

/// L2 strengths tried; the one with the lowest validation log-loss wins.
pub const ALPHAS: [f64; 4] = [30.0, 300.0, 1000.0, 3000.0];

fn matrix(examples: &[&Example]) -> Array2<f64> {
    let d = examples[0].x.len();
    Array2::from_shape_vec(
        (examples.len(), d),
        examples.iter().flat_map(|e| e.x.iter().copied()).collect(),
    )
    .expect("rows have equal length")
}

/// Fits a logistic model of "good answer" with L2 strength `alpha`.
pub fn fit_logistic(train: &[&Example], alpha: f64) -> Result<Logistic, String> {
    let y: Array1<bool> = train.iter().map(|e| e.good()).collect();
    let positives = y.iter().filter(|b| **b).count();
    if positives == 0 || positives == y.len() {
        // One class only: a constant model at the (smoothed) base rate.
        let rate = (positives as f64 + 0.5) / (y.len() as f64 + 1.0);
        return Ok(Logistic {
            weights: vec![0.0; train[0].x.len()],
            bias: (rate / (1.0 - rate)).ln(),
        });
    }
    let dataset = Dataset::new(matrix(train), y);
    let fitted = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(150)
        .gradient_tolerance(1e-4)
        .fit(&dataset)
        .map_err(|e| format!("logistic regression failed: {e}"))?;
    // linfa models P(the larger class); flip to P(good answer) when that class is `false`.
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    Ok(Logistic {
        weights: fitted.params().iter().map(|w| sign * w).collect(),
        bias: sign * fitted.intercept(),
    })
}

/// Least squares of ln(output tokens) on ln(1 + prompt tokens).
pub fn fit_output_tokens(train: &[&Example]) -> OutputTokens {
    let n = train.len() as f64;
    let xs: Vec<f64> = train
        .iter()
        .map(|e| (1.0 + e.input_tokens as f64).ln())
        .collect();
    let ys: Vec<f64> = train
        .iter()
        .map(|e| (e.output_tokens.max(1) as f64).ln())
        .collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = if sxx > 1e-12 { sxy / sxx } else { 0.0 };
    OutputTokens {
        intercept: my - slope * mx,
        slope,
    }
}

/// Mean log-loss of a model against the binary labels.
pub fn log_loss(model: &Logistic, examples: &[&Example]) -> f64 {
    examples
        .iter()
        .map(|e| {
            let p = model.probability(&e.x).clamp(1e-7, 1.0 - 1e-7);
            if e.good() {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum::<f64>()
        / examples.len().max(1) as f64
}

/// Accuracy, AUC, Brier score and expected calibration error (10 bins) on `examples`.
pub fn metrics(model: &Logistic, examples: &[&Example]) -> Value {
    let n = examples.len();
    if n == 0 {
        return json!({"n": 0});
    }
    let scored: Vec<(f64, bool)> = examples
        .iter()
        .map(|e| (model.probability(&e.x), e.good()))
        .collect();
    let accuracy = scored.iter().filter(|(p, y)| (*p >= 0.5) == *y).count() as f64 / n as f64;
    let brier = scored
        .iter()
        .map(|(p, y)| (p - f64::from(u8::from(*y))).powi(2))
        .sum::<f64>()
        / n as f64;
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
            ece += bin.len() as f64 / n as f64 * (conf - acc).abs();
        }
    }
    json!({
        "n": n,
        "positive_rate": round(scored.iter().filter(|(_, y)| *y).count() as f64 / n as f64),
        "accuracy": round(accuracy),
        "auc": auc(&scored).map(round),
        "brier": round(brier),
        "ece": round(ece),
        "log_loss": round(log_loss(model, examples)),
    })
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
    fn auc_and_output_tokens() {
        assert_eq!(auc(&[(0.1, false), (0.9, true)]), Some(1.0));
        assert_eq!(auc(&[(0.5, false), (0.5, true)]), Some(0.5));
        let ex: Vec<Example> = (1..50u64)
            .map(|t| Example {
                x: vec![0.0],
                quality: 1.0,
                input_tokens: t * 10,
                output_tokens: t * 20,
            })
            .collect();
        let refs: Vec<&Example> = ex.iter().collect();
        let m = fit_output_tokens(&refs);
        assert!(
            (m.predict(250) - 500.0).abs() / 500.0 < 0.1,
            "{}",
            m.predict(250)
        );
    }

    #[test]
    fn logistic_learns_a_separable_signal_with_the_right_sign() {
        // Mostly bad answers (so linfa's "larger class" is `false`): the sign must still be right.
        let ex: Vec<Example> = (0..200)
            .map(|i| {
                let good = i % 4 == 0;
                Example {
                    x: vec![if good { 1.0 } else { -1.0 }, 0.3],
                    quality: f64::from(u8::from(good)),
                    input_tokens: 1,
                    output_tokens: 1,
                }
            })
            .collect();
        let refs: Vec<&Example> = ex.iter().collect();
        let m = fit_logistic(&refs, 0.01).unwrap();
        assert!(m.probability(&[1.0, 0.3]) > 0.9);
        assert!(m.probability(&[-1.0, 0.3]) < 0.1);
        assert!(metrics(&m, &refs)["auc"].as_f64().unwrap() > 0.99);
    }
}
