//! The experiments panel: each router's variants and routes compared with its first arm on
//! cost, latency and feedback, with whether a difference is significant.

use super::filter::{rows, Filter, NOWHERE};
use super::index::{Index, Sym};
use super::query::{name, Group, Scores};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Each router's arms (route and variant) side by side, and each arm's feedback compared with
/// the arm that has the most requests: the difference in mean score with a 95 % (Welch)
/// interval and a plain statement of whether it is significant.
pub fn experiments(ix: &Index, f: &Filter) -> Value {
    let mut routers: BTreeMap<Sym, BTreeMap<(Sym, Sym), Group>> = BTreeMap::new();
    for r in rows(ix, f).filter(|r| r.router != 0) {
        let arm = (
            r.route,
            if r.learned.is_some() && r.variant == 0 {
                NOWHERE
            } else {
                r.variant
            },
        );
        routers
            .entry(r.router)
            .or_default()
            .entry(arm)
            .or_default()
            .add(r, true);
    }
    let list: Vec<Value> = routers
        .into_iter()
        .map(|(router, arms)| {
            let base = arms
                .iter()
                .max_by_key(|(_, g)| g.requests)
                .map(|(k, g)| (*k, g.user.clone()));
            let arms: Vec<Value> = arms
                .into_iter()
                .map(|((route, variant), g)| {
                    let arm_name = arm_label(ix, route, variant);
                    let verdict = base.as_ref().map(|(k, b)| {
                        if *k == (route, variant) {
                            json!({"baseline": true, "statement": "baseline (most requests)"})
                        } else {
                            compare(&g.user, b, &arm_label(ix, k.0, k.1))
                        }
                    });
                    let mut o = g.json(ix);
                    o.insert("route".into(), name(ix, route));
                    o.insert(
                        "variant".into(),
                        if variant == NOWHERE {
                            json!("auto")
                        } else {
                            name(ix, variant)
                        },
                    );
                    o.insert("arm".into(), json!(arm_name));
                    o.insert("versus_baseline".into(), verdict.unwrap_or(Value::Null));
                    Value::Object(o)
                })
                .collect();
            json!({"router": name(ix, router), "arms": arms})
        })
        .collect();
    json!({ "routers": list })
}

fn arm_label(ix: &Index, route: Sym, variant: Sym) -> String {
    let route = ix.syms.name(route).unwrap_or("default");
    match variant {
        0 => route.to_string(),
        NOWHERE => format!("{route} / auto"),
        v => format!("{route} / {}", ix.syms.name(v).unwrap_or("")),
    }
}

/// The fewest scores per arm before a difference is judged.
const MIN_SCORES: f64 = 10.0;

fn compare(arm: &Scores, base: &Scores, base_name: &str) -> Value {
    let (Some(a), Some(b)) = (arm.mean(), base.mean()) else {
        return json!({"significant": false, "statement": "no feedback scores yet"});
    };
    if arm.n < MIN_SCORES || base.n < MIN_SCORES {
        return json!({
            "significant": false, "difference": a - b,
            "statement": format!("too few scores to judge ({} here, {} on {base_name}; {MIN_SCORES} each needed)", arm.n, base.n),
        });
    }
    let se = (arm.var_of_mean().unwrap_or(0.0) + base.var_of_mean().unwrap_or(0.0)).sqrt();
    let (lo, hi) = (a - b - 1.96 * se, a - b + 1.96 * se);
    let significant = lo > 0.0 || hi < 0.0;
    let word = if a >= b { "higher" } else { "lower" };
    json!({
        "significant": significant, "difference": a - b, "ci95": [lo, hi],
        "statement": format!(
            "mean score {:.3} {word} than {base_name} (95 % interval {lo:+.3} to {hi:+.3}): {}",
            (a - b).abs(),
            if significant { "significant" } else { "not significant (the interval includes 0)" }
        ),
    })
}
