//! The linear models of an artifact (a candidate's quality and output tokens, the profile's
//! ease): `w · x + b` on the prompt features.

use serde::{Deserialize, Serialize};

/// `w · x + b`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Linear {
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl Linear {
    pub fn value(&self, x: &[f64]) -> f64 {
        self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>() + self.bias
    }

    /// This model extended by `effect` weights on further features, centred at `mean`: equal
    /// to `self` where those features take their mean values.
    pub fn with_effect(mut self, effect: &[f64], mean: &[f64]) -> Linear {
        self.bias -= effect.iter().zip(mean).map(|(w, m)| w * m).sum::<f64>();
        self.weights.extend_from_slice(effect);
        self
    }
}
