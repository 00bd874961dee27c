//! Prometheus metrics, kept in memory and rendered in the text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i] += 1;
        }
        self.sum += secs;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(self.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<String, BTreeMap<u16, u64>>,
    attempts: BTreeMap<String, BTreeMap<&'static str, u64>>,
    failovers: BTreeMap<String, u64>,
    latency: BTreeMap<String, Histogram>,
    ttft: BTreeMap<String, Histogram>,
    overhead: Histogram,
    tokens: BTreeMap<String, BTreeMap<&'static str, u64>>,
    cost: BTreeMap<String, f64>,
    stream_interrupted: u64,
    /// `auto` requests' cost and their baselines' cost (the savings ledger), by router.
    auto_cost: BTreeMap<String, (f64, f64)>,
}

/// All counters and histograms of one server.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Log records lost: the log buffer was full, or writing to disk failed.
    pub log_dropped: AtomicU64,
    /// Log records written to disk.
    pub log_written: AtomicU64,
    /// Successful learned-router hot reloads.
    pub auto_reloads: AtomicU64,
    /// Refused learned-router hot reloads.
    pub auto_reload_failures: AtomicU64,
    /// Requests shed at once because the server was at `server.max_in_flight`.
    pub shed_server: AtomicU64,
    /// Requests shed at once because their key was at `server.max_in_flight_per_key`.
    pub shed_key: AtomicU64,
    /// Successful config hot reloads.
    pub config_reloads: AtomicU64,
    /// Refused config hot reloads (the old config stayed).
    pub config_reload_failures: AtomicU64,
    /// Times a model entered its cooldown.
    pub cooldowns: AtomicU64,
    /// Attempts skipped because the model was cooling down.
    pub cooldown_skips: AtomicU64,
    /// Same-model retries (each one more attempt).
    pub retries: AtomicU64,
    /// Streams that went silent past `server.stream_idle_timeout`.
    pub stream_stalls: AtomicU64,
    /// Broken or stalled streams whose answer another model finished.
    pub stream_rescues: AtomicU64,
    /// Hedged requests: the next model started because the first was slow to its first token.
    pub hedges: AtomicU64,
}

/// What one finished request contributes.
pub struct RequestSample<'a> {
    pub endpoint: &'a str,
    pub status: u16,
    /// (model, succeeded) for each attempt, in order.
    pub attempts: Vec<(&'a str, bool)>,
    pub served_model: Option<&'a str>,
    pub duration_secs: f64,
    pub ttft_secs: Option<f64>,
    pub overhead_secs: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub stream_interrupted: bool,
    /// For an `auto` request with a baseline: (router, the baseline's cost of the same usage).
    pub baseline: Option<(&'a str, f64)>,
}

/// The value under `key`; the key's `String` is allocated only the first time it is seen, so a
/// request adds no allocation once its labels are known.
fn slot<'a, V: Default>(map: &'a mut BTreeMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key)
        .unwrap_or_else(|| unreachable!("inserted above"))
}

/// The counters of a map keyed by two labels, in label order: ((first, second), count).
fn by_two<K: Ord>(
    map: &BTreeMap<String, BTreeMap<K, u64>>,
) -> impl Iterator<Item = ((&String, &K), &u64)> {
    map.iter()
        .flat_map(|(a, by)| by.iter().map(move |(b, n)| ((a, b), n)))
}

/// The `# HELP` and `# TYPE` lines of a metric in the Prometheus text exposition.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

impl Metrics {
    pub fn record(&self, s: &RequestSample) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *slot(&mut m.requests, s.endpoint)
            .entry(s.status)
            .or_default() += 1;
        for (i, (model, ok)) in s.attempts.iter().enumerate() {
            let outcome = if *ok { "success" } else { "failure" };
            *slot(&mut m.attempts, model).entry(outcome).or_default() += 1;
            if !ok && i + 1 < s.attempts.len() {
                *slot(&mut m.failovers, model) += 1;
            }
        }
        m.overhead.observe(s.overhead_secs);
        if s.stream_interrupted {
            m.stream_interrupted += 1;
        }
        if let Some((router, baseline)) = s.baseline {
            let e = slot(&mut m.auto_cost, router);
            e.0 += s.cost_usd;
            e.1 += baseline;
        }
        let Some(model) = s.served_model else { return };
        slot(&mut m.latency, model).observe(s.duration_secs);
        if let Some(t) = s.ttft_secs {
            slot(&mut m.ttft, model).observe(t);
        }
        let tokens = slot(&mut m.tokens, model);
        *tokens.entry("prompt").or_default() += s.prompt_tokens;
        *tokens.entry("completion").or_default() += s.completion_tokens;
        *slot(&mut m.cost, model) += s.cost_usd;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        header(
            &mut out,
            "switchyard_requests_total",
            "counter",
            "Requests by endpoint and HTTP status.",
        );
        for ((ep, status), n) in by_two(&m.requests) {
            let _ = writeln!(
                out,
                "switchyard_requests_total{{endpoint=\"{ep}\",status=\"{status}\"}} {n}"
            );
        }
        header(
            &mut out,
            "switchyard_errors_total",
            "counter",
            "Requests answered with an error status.",
        );
        let errors: u64 = m
            .requests
            .values()
            .flat_map(|by| by.range(400..))
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(out, "switchyard_errors_total {errors}");
        header(
            &mut out,
            "switchyard_upstream_attempts_total",
            "counter",
            "Upstream attempts by model and outcome.",
        );
        for ((model, outcome), n) in by_two(&m.attempts) {
            let _ = writeln!(
                out,
                "switchyard_upstream_attempts_total{{model=\"{model}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        header(
            &mut out,
            "switchyard_failovers_total",
            "counter",
            "Failovers away from a model to the next in the chain.",
        );
        for (model, n) in &m.failovers {
            let _ = writeln!(out, "switchyard_failovers_total{{model=\"{model}\"}} {n}");
        }
        header(
            &mut out,
            "switchyard_request_duration_seconds",
            "histogram",
            "Total request latency by serving model.",
        );
        for (model, h) in &m.latency {
            h.render(
                &mut out,
                "switchyard_request_duration_seconds",
                &format!("model=\"{model}\""),
            );
        }
        header(
            &mut out,
            "switchyard_ttft_seconds",
            "histogram",
            "Time to first token by serving model.",
        );
        for (model, h) in &m.ttft {
            h.render(
                &mut out,
                "switchyard_ttft_seconds",
                &format!("model=\"{model}\""),
            );
        }
        header(
            &mut out,
            "switchyard_overhead_seconds",
            "histogram",
            "Time spent inside Switchyard, excluding upstreams.",
        );
        m.overhead
            .render(&mut out, "switchyard_overhead_seconds", "");
        header(
            &mut out,
            "switchyard_tokens_total",
            "counter",
            "Tokens by model and kind.",
        );
        for ((model, kind), n) in by_two(&m.tokens) {
            let _ = writeln!(
                out,
                "switchyard_tokens_total{{model=\"{model}\",kind=\"{kind}\"}} {n}"
            );
        }
        header(
            &mut out,
            "switchyard_cost_usd_total",
            "counter",
            "Upstream cost in USD by model.",
        );
        for (model, c) in &m.cost {
            let _ = writeln!(out, "switchyard_cost_usd_total{{model=\"{model}\"}} {c}");
        }
        header(
            &mut out,
            "switchyard_auto_cost_usd_total",
            "counter",
            "Cost in USD of auto requests by router, and (baseline=\"true\") what the same usage would have cost on each decision's baseline: the savings ledger.",
        );
        for (router, (cost, baseline)) in &m.auto_cost {
            let _ = writeln!(
                out,
                "switchyard_auto_cost_usd_total{{router=\"{router}\",baseline=\"false\"}} {cost}\nswitchyard_auto_cost_usd_total{{router=\"{router}\",baseline=\"true\"}} {baseline}"
            );
        }
        let counters = [
            (
                "switchyard_stream_interrupted_total",
                "Streams that broke after bytes reached the client.",
                m.stream_interrupted,
            ),
            (
                "switchyard_log_dropped_total",
                "Log records lost: the log buffer was full, or writing to disk failed.",
                self.log_dropped.load(Ordering::Relaxed),
            ),
            (
                "switchyard_log_written_total",
                "Log records written.",
                self.log_written.load(Ordering::Relaxed),
            ),
            (
                "switchyard_auto_reloads_total",
                "Learned-router artifacts loaded by hot reload.",
                self.auto_reloads.load(Ordering::Relaxed),
            ),
            (
                "switchyard_auto_reload_failures_total",
                "Hot reloads refused (broken artifact; the old one stayed).",
                self.auto_reload_failures.load(Ordering::Relaxed),
            ),
            (
                "switchyard_shed_server_total",
                "Requests answered 503 at once: the server was at server.max_in_flight.",
                self.shed_server.load(Ordering::Relaxed),
            ),
            (
                "switchyard_shed_key_total",
                "Requests answered 429 at once: the key was at server.max_in_flight_per_key.",
                self.shed_key.load(Ordering::Relaxed),
            ),
            (
                "switchyard_config_reloads_total",
                "Config hot reloads applied.",
                self.config_reloads.load(Ordering::Relaxed),
            ),
            (
                "switchyard_config_reload_failures_total",
                "Config hot reloads refused (the old config stayed).",
                self.config_reload_failures.load(Ordering::Relaxed),
            ),
            (
                "switchyard_cooldowns_total",
                "Times a model was put in cooldown after repeated failures or a Retry-After.",
                self.cooldowns.load(Ordering::Relaxed),
            ),
            (
                "switchyard_cooldown_skips_total",
                "Attempts skipped because the model was cooling down.",
                self.cooldown_skips.load(Ordering::Relaxed),
            ),
            (
                "switchyard_retries_total",
                "Same-model retries after a 5xx, a reset or a 429 (server.retries).",
                self.retries.load(Ordering::Relaxed),
            ),
            (
                "switchyard_stream_stalls_total",
                "Streams silent between chunks past server.stream_idle_timeout.",
                self.stream_stalls.load(Ordering::Relaxed),
            ),
            (
                "switchyard_stream_rescues_total",
                "Streams that broke or stalled after bytes were sent and were finished by the next model of the chain.",
                self.stream_rescues.load(Ordering::Relaxed),
            ),
            (
                "switchyard_hedges_total",
                "Streaming requests whose next model started because the first was slow to its first token (router hedge).",
                self.hedges.load(Ordering::Relaxed),
            ),
            (
                "switchyard_stream_malformed_chunks_total",
                "Upstream stream chunks that were not valid JSON, skipped.",
                crate::format::sse::MALFORMED_SKIPPED.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}
