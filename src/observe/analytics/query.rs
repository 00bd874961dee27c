//! The analytics panels, each one pass over the rows a [`Filter`] selects: traffic, models
//! (latency, TTFT, cost, feedback), costs, failovers, learned routing, experiments, recent
//! requests. Every function reads the [`Index`] and returns the JSON its endpoint serves.

pub use super::experiments::experiments;
pub use super::filter::Filter;
use super::filter::{rows, Matcher};
use super::index::{Index, Row, Sym};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub(super) fn name(ix: &Index, s: Sym) -> Value {
    ix.syms.name(s).map_or(Value::Null, |n| json!(n))
}

/// p50 / p95 / p99 (nearest rank) of the values, NaNs left out; nulls when there are none.
pub(super) fn percentiles(mut v: Vec<f32>) -> Value {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return json!({"p50": null, "p95": null, "p99": null});
    }
    let mut at = |q: f64| {
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        let (_, x, _) = v.select_nth_unstable_by(i, f32::total_cmp);
        (f64::from(*x) * 1000.0).round() / 1000.0
    };
    json!({"p50": at(0.5), "p95": at(0.95), "p99": at(0.99)})
}

/// Mean and normal-approximation 95 % interval of scores (NaNs left out).
#[derive(Default, Clone)]
pub(super) struct Scores {
    pub(super) n: f64,
    pub(super) sum: f64,
    pub(super) sum_sq: f64,
}

impl Scores {
    pub(super) fn add(&mut self, x: f32) {
        if !x.is_nan() {
            let x = f64::from(x);
            self.n += 1.0;
            self.sum += x;
            self.sum_sq += x * x;
        }
    }

    pub(super) fn mean(&self) -> Option<f64> {
        (self.n > 0.0).then(|| self.sum / self.n)
    }

    /// Variance of the mean (needs two scores).
    pub(super) fn var_of_mean(&self) -> Option<f64> {
        let m = self.mean()?;
        (self.n >= 2.0).then(|| ((self.sum_sq - self.n * m * m) / (self.n - 1.0)).max(0.0) / self.n)
    }

    pub(super) fn json(&self) -> Value {
        let ci = self
            .mean()
            .zip(self.var_of_mean())
            .map(|(m, v)| [m - 1.96 * v.sqrt(), m + 1.96 * v.sqrt()]);
        json!({"n": self.n as u64, "mean": self.mean(), "ci95": ci})
    }
}

/// Counts, cost and times of a group of rows.
#[derive(Default)]
pub(super) struct Group {
    pub(super) requests: u64,
    pub(super) errors: u64,
    pub(super) failovers: u64,
    pub(super) cost: f64,
    pub(super) duration: Vec<f32>,
    pub(super) ttft: Vec<f32>,
    pub(super) user: Scores,
    pub(super) judge: Scores,
    /// `auto` requests per artifact version.
    pub(super) artifacts: BTreeMap<Sym, u64>,
}

impl Group {
    pub(super) fn add(&mut self, r: &Row, times: bool) {
        self.requests += 1;
        self.errors += u64::from(r.status != 200);
        self.failovers += u64::from(!r.failures.is_empty() && r.model != 0);
        self.cost += r.cost_usd;
        if times {
            self.duration.push(r.duration_ms);
            self.ttft.push(r.ttft_ms);
        }
        self.user.add(r.user_score);
        self.judge.add(r.judge_score);
        if let Some(l) = r.learned.filter(|l| l.artifact != 0) {
            *self.artifacts.entry(l.artifact).or_default() += 1;
        }
    }

    pub(super) fn json(self, ix: &Index) -> Map<String, Value> {
        let per = |x: u64| x as f64 / self.requests.max(1) as f64;
        let mut m = Map::new();
        m.insert("requests".into(), json!(self.requests));
        m.insert("error_rate".into(), json!(per(self.errors)));
        m.insert("failover_rate".into(), json!(per(self.failovers)));
        m.insert("cost_usd".into(), json!(self.cost));
        m.insert(
            "cost_per_1k_requests_usd".into(),
            json!(1000.0 * self.cost / self.requests.max(1) as f64),
        );
        if !self.duration.is_empty() {
            m.insert("latency_ms".into(), percentiles(self.duration));
            m.insert("ttft_ms".into(), percentiles(self.ttft));
        }
        m.insert("feedback".into(), self.user.json());
        m.insert("judge".into(), self.judge.json());
        if !self.artifacts.is_empty() {
            let versions: Map<String, Value> = self
                .artifacts
                .iter()
                .map(|(s, n)| (ix.syms.name(*s).unwrap_or("").to_string(), json!(n)))
                .collect();
            m.insert("artifact_versions".into(), Value::Object(versions));
        }
        m
    }
}

/// A bucket width that gives about 60 points over the window, from a list of round sizes.
fn bucket_ms(from: u64, to: u64) -> u64 {
    const SIZES: [u64; 12] = [
        1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 1_800_000, 3_600_000, 10_800_000,
        21_600_000, 86_400_000,
    ];
    let span = to.saturating_sub(from);
    SIZES
        .into_iter()
        .find(|s| span / s <= 60)
        .unwrap_or(86_400_000)
}

/// The window actually covered: the filter's, clipped to the rows it selects.
fn span(ix: &Index, f: &Filter) -> Option<(u64, u64)> {
    rows(ix, f).fold(None, |acc, r| match acc {
        None => Some((r.ts_ms, r.ts_ms)),
        Some((a, b)) => Some((a.min(r.ts_ms), b.max(r.ts_ms))),
    })
}

/// Requests and errors over time, with totals.
pub fn traffic(ix: &Index, f: &Filter) -> Value {
    let Some((lo, hi)) = span(ix, f) else {
        return json!({"bucket_ms": null, "series": [], "totals": Group::default().json(ix)});
    };
    let width = bucket_ms(lo, hi);
    let mut buckets: BTreeMap<u64, (u64, u64, f64)> = BTreeMap::new();
    let mut total = Group::default();
    for r in rows(ix, f) {
        let b = buckets.entry(r.ts_ms / width * width).or_default();
        b.0 += 1;
        b.1 += u64::from(r.status != 200);
        b.2 += r.cost_usd;
        total.add(r, true);
    }
    let series: Vec<Value> = buckets
        .into_iter()
        .map(|(t, (n, e, c))| json!({"t": t, "requests": n, "errors": e, "cost_usd": c}))
        .collect();
    json!({"bucket_ms": width, "series": series, "totals": total.json(ix)})
}

/// Per served model: requests, error and failover rates, latency and TTFT percentiles, cost,
/// feedback and judge scores with 95 % intervals.
pub fn models(ix: &Index, f: &Filter) -> Value {
    let mut groups: BTreeMap<Sym, Group> = BTreeMap::new();
    for r in rows(ix, f).filter(|r| r.model != 0) {
        groups.entry(r.model).or_default().add(r, true);
    }
    let list: Vec<Value> = groups
        .into_iter()
        .map(|(m, g)| {
            let mut o = g.json(ix);
            o.insert("model".into(), name(ix, m));
            Value::Object(o)
        })
        .collect();
    json!({ "models": list })
}

/// Cost by model, router and (router, route, variant); and per 1k requests overall.
pub fn costs(ix: &Index, f: &Filter) -> Value {
    type Key = (Sym, Sym, Sym);
    let mut by: [BTreeMap<Key, (u64, f64)>; 3] = Default::default();
    let (mut n, mut total) = (0u64, 0.0);
    for r in rows(ix, f) {
        n += 1;
        total += r.cost_usd;
        for (i, k) in [
            (r.model, 0, 0),
            (r.router, 0, 0),
            (r.router, r.route, r.variant),
        ]
        .into_iter()
        .enumerate()
        {
            if k.0 != 0 {
                let e = by[i].entry(k).or_default();
                e.0 += 1;
                e.1 += r.cost_usd;
            }
        }
    }
    let list = |m: &BTreeMap<Key, (u64, f64)>, fields: &[&str]| -> Vec<Value> {
        m.iter()
            .map(|(k, (n, c))| {
                let mut o = Map::new();
                for (field, s) in fields.iter().zip([k.0, k.1, k.2]) {
                    o.insert(field.to_string(), name(ix, s));
                }
                o.insert("requests".into(), json!(n));
                o.insert("cost_usd".into(), json!(c));
                o.insert(
                    "cost_per_1k_requests_usd".into(),
                    json!(1000.0 * c / *n as f64),
                );
                Value::Object(o)
            })
            .collect()
    };
    json!({
        "requests": n, "cost_usd": total,
        "cost_per_1k_requests_usd": 1000.0 * total / n.max(1) as f64,
        "by_model": list(&by[0], &["model"]),
        "by_router": list(&by[1], &["router"]),
        "by_variant": list(&by[2], &["router", "route", "variant"]),
    })
}

/// Which models failed, why, and which model served instead (`null`: none did).
pub fn failovers(ix: &Index, f: &Filter) -> Value {
    let mut counts: BTreeMap<(Sym, Sym, Sym), u64> = BTreeMap::new();
    let (mut requests, mut with) = (0u64, 0u64);
    for r in rows(ix, f) {
        requests += 1;
        with += u64::from(!r.failures.is_empty());
        for fl in r.failures.iter() {
            *counts.entry((fl.model, fl.reason, r.model)).or_default() += 1;
        }
    }
    let mut list: Vec<(u64, Value)> = counts
        .into_iter()
        .map(|((m, why, served), n)| {
            (
                n,
                json!({"failed_model": name(ix, m), "reason": name(ix, why), "served_by": name(ix, served), "count": n}),
            )
        })
        .collect();
    list.sort_by_key(|b| std::cmp::Reverse(b.0));
    json!({
        "requests": requests, "requests_with_failures": with,
        "failures": list.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    })
}

/// Learned routing: the share of `auto` decisions per chosen candidate over time, knobs in
/// use, decision time, unfamiliar-prompt and exploration shares, and feedback per candidate.
pub fn learned(ix: &Index, f: &Filter) -> Value {
    let Some((lo, hi)) = span(ix, f) else {
        return json!({"requests": 0, "series": [], "candidates": [], "knobs": {}});
    };
    let width = bucket_ms(lo, hi);
    let mut buckets: BTreeMap<u64, BTreeMap<Sym, u64>> = BTreeMap::new();
    let mut knobs: BTreeMap<Sym, u64> = BTreeMap::new();
    let mut per: BTreeMap<Sym, Group> = BTreeMap::new();
    let (mut n, mut unfamiliar, mut explored) = (0u64, 0u64, 0u64);
    let mut decision = Vec::new();
    for r in rows(ix, f) {
        let Some(l) = r.learned else { continue };
        n += 1;
        unfamiliar += u64::from(l.unfamiliar);
        explored += u64::from(l.explored);
        decision.push(l.decision_ms);
        *knobs.entry(l.knob).or_default() += 1;
        *buckets
            .entry(r.ts_ms / width * width)
            .or_default()
            .entry(l.chosen)
            .or_default() += 1;
        per.entry(l.chosen).or_default().add(r, false);
    }
    let series: Vec<Value> = buckets
        .into_iter()
        .map(|(t, m)| {
            let shares: Map<String, Value> = m
                .into_iter()
                .map(|(s, c)| (ix.syms.name(s).unwrap_or("").to_string(), json!(c)))
                .collect();
            json!({"t": t, "chosen": shares})
        })
        .collect();
    let candidates: Vec<Value> = per
        .into_iter()
        .map(|(s, g)| {
            let share = g.requests as f64 / n.max(1) as f64;
            let mut o = g.json(ix);
            o.insert("model".into(), name(ix, s));
            o.insert("share".into(), json!(share));
            Value::Object(o)
        })
        .collect();
    let per_n = |x: u64| x as f64 / n.max(1) as f64;
    json!({
        "requests": n, "bucket_ms": width, "series": series, "candidates": candidates,
        "knobs": knobs.into_iter().map(|(k, c)| (ix.syms.name(k).unwrap_or("default").to_string(), json!(c))).collect::<Map<_, _>>(),
        "decision_ms": percentiles(decision),
        "unfamiliar_rate": per_n(unfamiliar), "exploration_share": per_n(explored),
    })
}

/// The newest `limit` requests the filter selects, newest first (for the drill-down list).
pub fn recent(ix: &Index, f: &Filter, limit: usize) -> Value {
    let m = Matcher::new(ix, f);
    let list: Vec<Value> = ix
        .rows
        .iter()
        .rev()
        .filter(|r| m.matches(r))
        .take(limit)
        .map(|r| {
            json!({
                "ts_ms": r.ts_ms, "model": name(ix, r.model), "router": name(ix, r.router),
                "status": r.status, "duration_ms": r.duration_ms, "cost_usd": r.cost_usd,
                "attempts": r.failures.len() + usize::from(r.model != 0),
                "request_id": ix.request_id(r),
            })
        })
        .collect();
    json!({ "requests": list })
}

/// The values each filter can take (users: the 100 with most requests), and the time range.
pub fn filters(ix: &Index, f: &Filter) -> Value {
    // Requests per symbol, per filter (symbols are dense small integers), over every row the
    // caller may see (the window does not apply).
    let syms = ix.syms.count() + 1;
    let mut seen = vec![vec![0u64; syms]; 7];
    let visible: Vec<&Row> = rows(ix, &Filter::all().within(f.scope.clone())).collect();
    for r in &visible {
        for (i, s) in [
            r.model, r.router, r.route, r.variant, r.key, r.user, r.endpoint,
        ]
        .into_iter()
        .enumerate()
        {
            seen[i][s as usize] += 1;
        }
    }
    let names = |counts: &[u64], top: usize| -> Vec<Value> {
        let mut v: Vec<(usize, u64)> = counts
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| (s, *n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut out: Vec<Value> = v
            .into_iter()
            .take(top)
            .map(|(s, _)| name(ix, s as Sym))
            .collect();
        out.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        out
    };
    let keys = [
        "model", "router", "route", "variant", "key", "user", "endpoint",
    ];
    let mut o = Map::new();
    for (i, k) in keys.iter().enumerate() {
        let top = if *k == "user" { 100 } else { usize::MAX };
        o.insert(k.to_string(), json!(names(&seen[i], top)));
    }
    o.insert(
        "first_ms".into(),
        json!(visible.iter().map(|r| r.ts_ms).min()),
    );
    o.insert(
        "last_ms".into(),
        json!(visible.iter().map(|r| r.ts_ms).max()),
    );
    o.insert("rows".into(), json!(visible.len()));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A table of `n` requests to router `demo`: variant `a` on mock/fast scored `a_score`,
    /// variant `b` on mock/smart scored `b_score`; every fourth `a` request failed over from
    /// mock/flaky.
    fn table(n: usize, a_score: f64, b_score: f64) -> Index {
        let mut ix = Index::new(10_000);
        for i in 0..n {
            let (variant, model, score) = if i.is_multiple_of(2) {
                ("a", "mock/fast", a_score)
            } else {
                ("b", "mock/smart", b_score)
            };
            let failed = if i.is_multiple_of(4) {
                r#"{"model":"mock/flaky","status":503,"error_kind":"status"},"#
            } else {
                ""
            };
            let line = format!(
                r#"{{"ts_ms":{},"request_id":"r{i}","endpoint":"/v1/chat/completions","status":200,"model":"{model}","router":"demo","route":"default","variant":"{variant}","user":"u{}","attempts":[{failed}{{"model":"{model}","success":true,"status":200}}],"ttft_ms":{},"duration_ms":{},"cost_usd":0.001}}"#,
                1_000 + i as u64 * 1_000,
                i % 3,
                i,
                2 * i
            );
            ix.add_request(0, 0, line.as_bytes());
            // scores spread ±0.1 around the arm's mean
            let s = score + 0.1 * ((i % 3) as f64 - 1.0);
            ix.add_feedback(format!(r#"{{"request_id":"r{i}","score":{s}}}"#).as_bytes());
        }
        ix
    }

    #[test]
    fn filters_select_rows_and_unknown_values_match_nothing() {
        let ix = table(40, 0.5, 0.5);
        let count = |f: &Filter| traffic(&ix, f)["totals"]["requests"].as_u64().unwrap();
        assert_eq!(count(&Filter::all()), 40);
        let only = |set: fn(&mut Filter)| {
            let mut f = Filter::all();
            set(&mut f);
            count(&f)
        };
        assert_eq!(only(|f| f.model = Some("mock/fast".into())), 20);
        assert_eq!(only(|f| f.user = Some("u0".into())), 14);
        assert_eq!(only(|f| f.model = Some("no/such".into())), 0);
        assert_eq!(only(|f| f.from_ms = 11_000), 30);
        assert_eq!(only(|f| f.to_ms = 10_000), 10);
    }

    #[test]
    fn parse_reads_windows_and_names_bad_parameters() {
        let q = |pairs: &[(&str, &str)]| {
            let m: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Filter::parse(&m, 10_000_000)
        };
        assert_eq!(
            q(&[("window", "1h")]).unwrap().from_ms,
            10_000_000 - 3_600_000
        );
        assert_eq!(q(&[("window", "all")]).unwrap().from_ms, 0);
        assert_eq!(
            q(&[("model", "m"), ("from", "5")])
                .unwrap()
                .model
                .as_deref(),
            Some("m")
        );
        assert_eq!(q(&[("window", "soon")]).unwrap_err().0, "window");
        assert_eq!(q(&[("to", "x")]).unwrap_err().0, "to");
        assert_eq!(q(&[("colour", "red")]).unwrap_err().0, "colour");
        assert_eq!(q(&[("from", "9"), ("to", "3")]).unwrap_err().0, "from");
    }

    #[test]
    fn panels_count_failovers_percentiles_and_feedback() {
        let ix = table(40, 0.5, 0.5);
        let f = failovers(&ix, &Filter::all());
        assert_eq!(f["requests_with_failures"], 10);
        assert_eq!(f["failures"][0]["reason"], "status 503");
        assert_eq!(f["failures"][0]["served_by"], "mock/fast");
        let m = models(&ix, &Filter::all());
        let fast = &m["models"][0];
        assert_eq!(fast["model"], "mock/fast");
        // ttft of the fast requests: 0, 2, 4, ..., 38 → nearest-rank p50 = 18
        assert_eq!(fast["ttft_ms"]["p50"], 18.0);
        assert_eq!(fast["feedback"]["n"], 20);
        assert!((fast["feedback"]["mean"].as_f64().unwrap() - 0.5).abs() < 0.01);
        let c = costs(&ix, &Filter::all());
        assert!((c["cost_per_1k_requests_usd"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn experiments_say_whether_a_difference_is_significant() {
        let verdict = |ix: &Index| {
            let e = experiments(ix, &Filter::all());
            let arms = e["routers"][0]["arms"].as_array().unwrap().clone();
            arms.into_iter()
                .find(|a| a["versus_baseline"]["baseline"] != true)
                .unwrap()["versus_baseline"]
                .clone()
        };
        let clear = verdict(&table(60, 0.4, 0.8));
        assert_eq!(clear["significant"], true, "{clear}");
        assert!(clear["statement"].as_str().unwrap().contains("significant"));
        let same = verdict(&table(60, 0.6, 0.6));
        assert_eq!(same["significant"], false, "{same}");
        assert!(same["statement"].as_str().unwrap().contains("includes 0"));
        let few = verdict(&table(8, 0.4, 0.8));
        assert!(few["statement"].as_str().unwrap().starts_with("too few"));
    }
}
