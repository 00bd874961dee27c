//! Cooldowns (circuit breaking): a model that fails `server.cooldown_failures` times in a row
//! (retryable failures: 5xx, 429, timeouts, connection errors), or that answers 429 with a
//! `Retry-After`, is skipped for a while (or the Retry-After, whichever is longer). When that
//! is over one request probes it (half-open): success closes the circuit, failure opens it
//! again for twice as long. The first open lasts [`FIRST_OPEN`] and the doubling stops at
//! `server.cooldown`, so a model that recovers gets traffic again within `server.cooldown` of
//! its recovery (plus the wait for a request). A probe that never reports (its request was
//! dropped) stops blocking others after `server.cooldown`. A chain whose every model is
//! cooling down still tries its last model, so a request is never refused on cooldowns alone.

use crate::observe::metrics::Metrics;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first cooldown's length (or `server.cooldown` when shorter); each failed probe doubles it.
pub const FIRST_OPEN: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Health {
    /// Retryable failures in a row.
    failures: u32,
    /// Skipped until then.
    until: Option<Instant>,
    /// When the probe in flight started (half-open).
    probing: Option<Instant>,
    /// The length of the current (or last) open period.
    open_for: Duration,
}

/// What to do with a model now.
#[derive(Debug, PartialEq)]
pub enum Gate {
    /// Try it.
    Pass,
    /// Skip it for this long.
    Skip(Duration),
}

/// The cooldown state of every model of one server.
pub struct Cooldowns {
    /// Failures in a row that start a cooldown; 0 turns cooldowns off.
    threshold: u32,
    period: Duration,
    models: Mutex<HashMap<String, Health>>,
}

impl Cooldowns {
    /// Whether two server configs give the same cooldowns (so a reload keeps the counts).
    pub fn same_settings(a: &crate::config::ServerConfig, b: &crate::config::ServerConfig) -> bool {
        (a.cooldown_failures, a.cooldown) == (b.cooldown_failures, b.cooldown)
    }

    pub fn new(threshold: u32, period: Duration) -> Cooldowns {
        Cooldowns {
            threshold,
            period,
            models: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Health>> {
        self.models.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `model` may be tried now; the first call after a cooldown becomes the probe.
    pub fn gate(&self, model: &str) -> Gate {
        if self.threshold == 0 {
            return Gate::Pass;
        }
        let mut models = self.lock();
        let Some(h) = models.get_mut(model) else {
            return Gate::Pass;
        };
        let Some(until) = h.until else {
            return Gate::Pass;
        };
        let now = Instant::now();
        if now < until {
            return Gate::Skip(until - now);
        }
        if h.probing
            .is_some_and(|since| now.duration_since(since) < self.period)
        {
            // Another request is probing it: keep skipping until that one reports.
            return Gate::Skip(Duration::ZERO);
        }
        h.probing = Some(now);
        Gate::Pass
    }

    /// The model answered: its circuit closes.
    pub fn success(&self, model: &str) {
        if self.threshold == 0 {
            return;
        }
        let mut models = self.lock();
        if let Some(h) = models.get_mut(model) {
            *h = Health::default();
        }
    }

    /// The model failed with a retryable error (and maybe said when to come back).
    pub fn failure(&self, model: &str, retry_after: Option<Duration>, metrics: &Metrics) {
        if self.threshold == 0 {
            return;
        }
        let mut models = self.lock();
        let h = models.entry(model.to_string()).or_default();
        h.failures = h.failures.saturating_add(1);
        let now = Instant::now();
        let mut until = None;
        if h.probing.is_some() || h.failures >= self.threshold {
            // Capped backoff: the first open is short, each failed probe doubles it.
            h.open_for = if h.probing.is_some() && !h.open_for.is_zero() {
                (h.open_for * 2).min(self.period)
            } else {
                FIRST_OPEN.min(self.period)
            };
            until = Some(now + h.open_for);
        }
        if let Some(ra) = retry_after {
            until = until.max(Some(now + ra));
        }
        h.probing = None;
        if let Some(u) = until {
            if h.until.is_none_or(|old| old <= now) {
                metrics.cooldowns.fetch_add(1, Ordering::Relaxed);
            }
            h.until = Some(h.until.map_or(u, |old| old.max(u)));
        }
    }

    /// A model's state for `/v1/models`: `closed`, `open` (cooling down) or `half_open`.
    pub fn describe(&self, model: &str) -> Value {
        let models = self.lock();
        let Some(h) = models.get(model) else {
            return json!({"state": "closed", "failures_in_a_row": 0});
        };
        let now = Instant::now();
        match h.until {
            Some(u) if now < u => json!({
                "state": "open", "failures_in_a_row": h.failures,
                "remaining_ms": (u - now).as_millis() as u64,
                "next_probe_in_ms": (u - now).as_millis() as u64,
                "open_for_ms": h.open_for.as_millis() as u64,
            }),
            Some(_) => json!({"state": "half_open", "failures_in_a_row": h.failures,
                              "probe_in_flight": h.probing.is_some(), "next_probe_in_ms": 0}),
            None => json!({"state": "closed", "failures_in_a_row": h.failures}),
        }
    }

    /// Models whose circuit is open now, with the ms until their next probe (for `/metrics`).
    pub fn open(&self) -> Vec<(String, u64)> {
        let now = Instant::now();
        let mut open: Vec<(String, u64)> = self
            .lock()
            .iter()
            .filter_map(|(m, h)| {
                h.until
                    .filter(|u| now < *u)
                    .map(|u| (m.clone(), (u - now).as_millis() as u64))
            })
            .collect();
        open.sort();
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_probes_once_and_closes_on_success() {
        let m = Metrics::default();
        let c = Cooldowns::new(2, Duration::from_millis(30));
        c.failure("a", None, &m);
        assert_eq!(c.gate("a"), Gate::Pass);
        c.failure("a", None, &m);
        assert!(matches!(c.gate("a"), Gate::Skip(_)));
        assert_eq!(c.describe("a")["state"], "open");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.gate("a"), Gate::Pass, "the probe");
        assert!(matches!(c.gate("a"), Gate::Skip(_)), "one probe at a time");
        c.failure("a", None, &m);
        assert!(
            matches!(c.gate("a"), Gate::Skip(_)),
            "a failed probe reopens"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.gate("a"), Gate::Pass);
        c.success("a");
        assert_eq!(c.gate("a"), Gate::Pass);
        assert_eq!(c.describe("a")["state"], "closed");
        assert_eq!(m.cooldowns.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn failed_probes_double_the_open_period_up_to_the_cap_and_a_lost_probe_expires() {
        let m = Metrics::default();
        let c = Cooldowns::new(1, Duration::from_secs(30));
        c.failure("a", None, &m);
        let open_ms = |c: &Cooldowns| c.describe("a")["open_for_ms"].as_u64().unwrap();
        assert_eq!(open_ms(&c), 5_000, "the first open is short");
        for want in [10_000, 20_000, 30_000, 30_000] {
            // the probe (forced: the test does not wait the period out)
            c.lock().get_mut("a").unwrap().until = Some(Instant::now());
            assert_eq!(c.gate("a"), Gate::Pass);
            c.failure("a", None, &m);
            assert_eq!(open_ms(&c), want);
        }
        assert!(c.describe("a")["next_probe_in_ms"].as_u64().unwrap() > 29_000);
        assert_eq!(c.open(), vec![("a".to_string(), c.open()[0].1)]);
        // A probe whose request vanished blocks others only for the cap.
        let short = Cooldowns::new(1, Duration::from_millis(20));
        short.failure("b", None, &m);
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(short.gate("b"), Gate::Pass, "the probe, never reported");
        assert_eq!(short.gate("b"), Gate::Skip(Duration::ZERO));
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(short.gate("b"), Gate::Pass, "the lost probe expired");
    }

    #[test]
    fn retry_after_starts_a_cooldown_at_once_and_zero_turns_it_off() {
        let m = Metrics::default();
        let c = Cooldowns::new(5, Duration::from_millis(10));
        c.failure("a", Some(Duration::from_secs(60)), &m);
        match c.gate("a") {
            Gate::Skip(d) => assert!(d > Duration::from_secs(50)),
            g => panic!("{g:?}"),
        }
        let off = Cooldowns::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            off.failure("a", Some(Duration::from_secs(60)), &m);
        }
        assert_eq!(off.gate("a"), Gate::Pass);
    }
}
