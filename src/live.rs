//! Live, decaying estimates per model from Switchyard's own traffic: time to first token and
//! total latency (weighted medians) and error rate (weighted mean) over the model's recent
//! attempts, each weighted by `0.5^(age / half-life)`. Routes sort their chain by them
//! (`sort = "ttft"`), guardrails read them (`model.ttft_p50_ms`), `/v1/models` and `/metrics`
//! show them. A leaf: imports only `config`; `route`, `observe` and `http` read it.

use crate::config::ModelConfig;
pub use crate::config::SortBy;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Attempts kept per model.
const KEEP: usize = 256;
/// Age at which an attempt counts half.
pub const HALF_LIFE: Duration = Duration::from_secs(60);
/// Attempts older than this are forgotten (a model without newer ones is unmeasured again).
pub const WINDOW: Duration = Duration::from_secs(600);

/// One finished attempt.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    ok: bool,
    ttft_ms: f64,
    latency_ms: f64,
}

/// A model's current estimates; `None` fields when it has no recent successful attempt.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Estimate {
    pub ttft_p50_ms: Option<f64>,
    /// The slow end of the first-token times (weighted 95th percentile): hedging waits this long.
    pub ttft_p95_ms: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub error_rate: Option<f64>,
    /// Attempts within the window.
    pub samples: usize,
}

/// The estimates of every model, fed by finished requests.
#[derive(Default)]
pub struct LiveStats {
    models: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl LiveStats {
    /// Records an attempt: `ok` with its time to first token and total time, or a failure.
    pub fn record(&self, model: &str, ok: bool, ttft_ms: f64, latency_ms: f64) {
        self.record_at(model, Instant::now(), ok, ttft_ms, latency_ms);
    }

    fn record_at(&self, model: &str, at: Instant, ok: bool, ttft_ms: f64, latency_ms: f64) {
        let mut all = self.models.lock().unwrap_or_else(|e| e.into_inner());
        // (no key allocation once the model is known: this runs for every attempt)
        if !all.contains_key(model) {
            all.insert(model.to_string(), VecDeque::new());
        }
        let Some(q) = all.get_mut(model) else { return };
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back(Sample {
            at,
            ok,
            ttft_ms,
            latency_ms,
        });
    }

    /// The model's estimates now.
    pub fn estimate(&self, model: &str) -> Estimate {
        self.estimate_at(model, Instant::now())
    }

    fn estimate_at(&self, model: &str, now: Instant) -> Estimate {
        let all = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let Some(q) = all.get(model) else {
            return Estimate::default();
        };
        let recent: Vec<(f64, &Sample)> = q
            .iter()
            .filter_map(|s| {
                let age = now.saturating_duration_since(s.at);
                (age <= WINDOW)
                    .then(|| (0.5f64.powf(age.as_secs_f64() / HALF_LIFE.as_secs_f64()), s))
            })
            .collect();
        if recent.is_empty() {
            return Estimate::default();
        }
        let total: f64 = recent.iter().map(|(w, _)| w).sum();
        // (a fold from +0: an empty f64 sum is -0)
        let failed = recent
            .iter()
            .filter(|(_, s)| !s.ok)
            .fold(0.0, |acc, (w, _)| acc + w);
        let ok: Vec<(f64, &Sample)> = recent.iter().filter(|(_, s)| s.ok).copied().collect();
        let quantile = |f: fn(&Sample) -> f64, q: f64| {
            weighted_quantile(ok.iter().map(|(w, s)| (*w, f(s))).collect(), q)
        };
        let median = |f: fn(&Sample) -> f64| quantile(f, 0.5);
        Estimate {
            ttft_p50_ms: median(|s| s.ttft_ms),
            ttft_p95_ms: quantile(|s| s.ttft_ms, 0.95),
            latency_p50_ms: median(|s| s.latency_ms),
            error_rate: Some(failed / total),
            samples: recent.len(),
        }
    }

    /// Sorts models by `by`, ascending and stable. Models not measured recently go first, so
    /// that they are measured again rather than left out on stale numbers.
    /// Returns each model's value in the new order (`None`: not measured).
    pub fn sort(&self, models: &mut [std::sync::Arc<ModelConfig>], by: SortBy) -> Vec<Option<f64>> {
        let key = |m: &ModelConfig| -> Option<f64> {
            let e = || self.estimate(&m.id);
            match by {
                SortBy::Ttft => e().ttft_p50_ms,
                SortBy::Latency => e().latency_p50_ms,
                SortBy::ErrorRate => e().error_rate,
                SortBy::Price => Some(m.input_price_per_mtok + m.output_price_per_mtok),
            }
        };
        let mut keyed: Vec<(Option<f64>, std::sync::Arc<ModelConfig>)> =
            models.iter().map(|m| (key(m), m.clone())).collect();
        keyed.sort_by(|a, b| match (a.0, b.0) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.total_cmp(&y),
        });
        let mut values = Vec::with_capacity(keyed.len());
        for (slot, (value, m)) in models.iter_mut().zip(keyed) {
            *slot = m;
            values.push(value);
        }
        values
    }

    /// Every model measured in the window, with its estimates.
    pub fn all(&self) -> Vec<(String, Estimate)> {
        let names: Vec<String> = self
            .models
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut out: Vec<(String, Estimate)> = names
            .into_iter()
            .map(|n| {
                let e = self.estimate(&n);
                (n, e)
            })
            .filter(|(_, e)| e.samples > 0)
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// The value at half the total weight.
fn weighted_quantile(mut v: Vec<(f64, f64)>, q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.1.total_cmp(&b.1));
    let at = v.iter().map(|(w, _)| w).sum::<f64>() * q;
    let mut acc = 0.0;
    for (w, x) in &v {
        acc += w;
        if acc >= at {
            return Some((x * 1000.0).round() / 1000.0);
        }
    }
    v.last().map(|(_, x)| *x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_attempts_outweigh_old_ones_and_old_ones_expire() {
        let live = LiveStats::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            live.record_at("m", t0, true, 500.0, 900.0);
        }
        // Three minutes later the model got fast: 3 fresh samples outweigh 5 old ones (1/8 each).
        let t1 = t0 + Duration::from_secs(180);
        for _ in 0..3 {
            live.record_at("m", t1, true, 50.0, 100.0);
        }
        live.record_at("m", t1, false, 0.0, 10.0);
        let e = live.estimate_at("m", t1);
        assert_eq!(e.ttft_p50_ms, Some(50.0));
        assert_eq!(e.samples, 9);
        let rate = e.error_rate.unwrap();
        assert!((rate - 1.0 / (4.0 + 5.0 / 8.0)).abs() < 1e-9, "{rate}");
        // Past the window nothing is known.
        assert_eq!(
            live.estimate_at("m", t1 + WINDOW + Duration::from_secs(1)),
            Estimate::default()
        );
    }

    #[test]
    fn sorting_puts_unmeasured_models_first_then_ascending() {
        use crate::config::Config;
        let config = Config::embedded_default().unwrap();
        let by_id = |id: &str| config.models.iter().find(|m| m.id == id).unwrap().clone();
        let mut chain = vec![by_id("mock/smart"), by_id("mock/fast"), by_id("mock/mid")];
        let live = LiveStats::default();
        live.record("mock/smart", true, 300.0, 400.0);
        live.record("mock/fast", true, 100.0, 800.0);
        live.sort(&mut chain, SortBy::Ttft);
        let ids: Vec<&str> = chain.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["mock/mid", "mock/fast", "mock/smart"]);
        live.sort(&mut chain, SortBy::Price);
        let ids: Vec<&str> = chain.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["mock/fast", "mock/mid", "mock/smart"]);
    }
}
