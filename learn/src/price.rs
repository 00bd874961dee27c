//! Prices per million tokens and the one cost formula, used for predicted cost (scoring), the
//! cost of served requests (the gateway's log and metrics) and outcome costs (training).

use serde::{Deserialize, Serialize};

/// Prices per million tokens, and the one cost formula.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    /// USD for a request of `prompt_tokens` in and `output_tokens` out.
    pub fn cost_usd(&self, prompt_tokens: f64, output_tokens: f64) -> f64 {
        (prompt_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6
    }
}
