//! The savings panel (`/v1/analytics/savings`, the dashboard's savings section and
//! `switchyard report`): the ledger ([`switchyard_learn::savings`]) of the `auto` requests in
//! the window whose decision had a baseline, overall and per router and per key.

use super::filter::{rows, Filter};
use super::index::{Index, Row, Sym};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use switchyard_learn::savings::{ledger, Entry};

/// Seed of the ledger's bootstrap interval (the same window gives the same interval).
const SEED: u64 = 42;

/// The savings panel: the ledger ([`switchyard_learn::savings`]) of the window's `auto`
/// requests with a baseline, overall and per router and per key.
pub fn savings(ix: &Index, f: &Filter) -> Value {
    let entry = |r: &Row| {
        let l = r
            .learned
            .as_ref()
            .filter(|l| !l.baseline_cost_usd.is_nan())?;
        let score = if r.judge_score.is_nan() {
            r.user_score
        } else {
            r.judge_score
        };
        Some(Entry {
            cost_usd: r.cost_usd,
            baseline_cost_usd: l.baseline_cost_usd,
            on_baseline: l.on_baseline,
            propensity: f64::from(l.propensity),
            quality: (!score.is_nan()).then_some(f64::from(score)),
        })
    };
    let (mut all, mut by_router, mut by_key) = (
        vec![],
        BTreeMap::<Sym, Vec<Entry>>::new(),
        BTreeMap::<Sym, Vec<Entry>>::new(),
    );
    for r in rows(ix, f) {
        let Some(e) = entry(r) else { continue };
        all.push(e);
        by_router.entry(r.router).or_default().push(e);
        by_key.entry(r.key).or_default().push(e);
    }
    let named = |groups: BTreeMap<Sym, Vec<Entry>>, field: &str| -> Vec<Value> {
        groups
            .into_iter()
            .map(|(s, e)| {
                let mut v = json!(ledger(&e, SEED));
                v[field] = json!(ix.syms.name(s).unwrap_or(if field == "router" {
                    "auto"
                } else {
                    "(no key)"
                }));
                v
            })
            .collect()
    };
    json!({
        "overall": ledger(&all, SEED),
        "by_router": named(by_router, "router"),
        "by_key": named(by_key, "key"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A known log: 10 `auto` requests with baseline mock/smart ($0.01 of usage each there);
    /// 3 served by it, 7 by mock/fast at $0.001; the first 4 judged.
    fn index() -> Index {
        let mut ix = Index::new(100);
        for i in 0..10 {
            let (model, cost) = if i < 3 {
                ("mock/smart", 0.01)
            } else {
                ("mock/fast", 0.001)
            };
            let line = format!(
                r#"{{"ts_ms":{},"request_id":"r{i}","status":200,"model":"{model}","router":"auto","key":"k{}","cost_usd":{cost},"learned":{{"chosen":"{model}","baseline":"mock/smart","exploration":{{"explored":false,"propensity":1.0}}}},"savings":{{"baseline":"mock/smart","baseline_cost_usd":0.01,"saved_usd":{}}}}}"#,
                1000 + i,
                i % 2,
                0.01 - cost
            );
            ix.add_request(0, 0, line.as_bytes());
            if i < 4 {
                ix.add_feedback(
                    format!(r#"{{"request_id":"r{i}","score":0.9,"source":"judge"}}"#).as_bytes(),
                );
            }
        }
        ix
    }

    #[test]
    fn the_panel_adds_up_the_counterfactual_costs_of_a_known_log() {
        let v = savings(&index(), &Filter::all());
        let o = &v["overall"];
        assert_eq!(o["requests"], 10);
        assert!(
            (o["cost_usd"].as_f64().unwrap() - 0.037).abs() < 1e-12,
            "{o}"
        );
        assert!(
            (o["baseline_cost_usd"].as_f64().unwrap() - 0.1).abs() < 1e-12,
            "{o}"
        );
        assert_eq!(o["saved_share"], 0.63);
        // 4 labels, 3 of them on the baseline: too few for an estimate, and it says how many.
        assert_eq!(o["quality"]["status"], "not_enough_labels");
        assert_eq!(o["quality"]["labels"], 4);
        assert_eq!(o["quality"]["baseline_labels"], 3);
        assert_eq!(o["quality"]["needed"], 26);
        let keys: Vec<&str> = v["by_key"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["k0", "k1"]);
        assert_eq!(v["by_router"][0]["router"], "auto");
    }
}
