//! Learned routing composed with routers, validated at load and reloaded: `auto` inside router
//! routes, `[auto]` errors named at load, the strong-share knob, artifact hot reload and SIGHUP.
//! The real encoder (scripts/setup_encoder.sh) with small artifacts written here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

mod common;

use common::artifacts::*;
use common::{user, Harness, Options};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_routes_compose_with_learned_routing() {
    let dir = tmp("routes");
    write_artifact(&dir, None, "up/ok");
    let extra = format!(
        "[auto]\nartifact = \"{}\"\nencoder = \"{}\"\nonboard = 0\ncandidates = [\"up/ok\", \"up/second\"]\n\
         [routers.tiered]\nroutes = [{{ name = \"free\", when = 'plan == \"free\"', auto = {{ candidates = [\"up/second\"], knob = \"cheap\" }} }}]\n\
         default = {{ name = \"paid\", auto = {{ knob = \"best\" }}, fallbacks = [\"up/second\"] }}\n",
        dir.display(),
        encoder_dir().display()
    );
    let h = Harness::start_with(Options {
        extra,
        ..Options::default()
    })
    .await;
    let (status, _, v) = h
        .chat(json!({"model": "router/tiered", "messages": user("Prove that sqrt(2) is irrational."), "metadata": {"plan": "pro"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    let r = &v["metadata"]["routing"];
    assert_eq!(
        (r["router"].as_str(), r["route"].as_str()),
        (Some("tiered"), Some("paid"))
    );
    assert_eq!(
        r["chosen"], "up/ok",
        "best knob picks the better candidate: {r}"
    );
    assert_eq!(r["knob"], "best");
    assert_eq!(r["candidates"].as_array().unwrap().len(), 2);
    assert_eq!(v["model"], "up/ok");
    // Free plan: the route's subset only, at its own knob.
    let (status, _, v) = h
        .chat(
            json!({"model": "router/tiered", "messages": user("hi"), "metadata": {"plan": "free"}}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let r = &v["metadata"]["routing"];
    assert_eq!(r["route"], "free");
    assert_eq!(r["knob"], "cheap");
    assert_eq!(r["candidates"].as_array().unwrap().len(), 1);
    assert_eq!(v["model"], "up/second");
    // A request knob overrides the route's default.
    let v: Value = h
        .post("/v1/route", json!({"model": "router/tiered", "messages": user("hi"), "router": {"cost_weight": 0.5}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["routing"]["cost_weight"], 0.5, "{v}");
    let chain = v["chain"].as_array().unwrap();
    assert_eq!(
        chain.len(),
        2,
        "ranked candidates, the fallback deduplicated: {v}"
    );
    assert_eq!(chain[0], v["routing"]["chosen"]);
    h.stop_and_read_logs().await;
}

#[test]
fn route_auto_is_validated_at_load() {
    let base =
        "[providers.p]\nkind = \"mock\"\n[[models]]\nid = \"p/a\"\n[[models]]\nid = \"p/b\"\n";
    let with = |rest: &str| {
        switchyard::config::Config::parse(&format!("{base}{rest}"), "x.toml", &|_| None)
    };
    let refused = |text: String, key: &str, reason: &str| {
        let e = with(&text).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(reason), "{text}: {e}");
    };
    let e = with("[routers.r]\ndefault = { auto = { knob = \"cheap\" } }\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("routers.r.default.auto") && e.contains("[auto] section"),
        "{e}"
    );
    let auto = "[auto]\ncandidates = [\"p/a\"]\n";
    let e = with(&format!(
        "[routers.r]\ndefault = {{ auto = {{ candidates = [\"p/b\"] }} }}\n{auto}"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("routers.r.default.auto.candidates")
            && e.contains("\"p/b\" is not an [auto] candidate"),
        "{e}"
    );
    let e = with(&format!(
        "[routers.r]\ndefault = {{ auto = {{ knob = \"fast\" }} }}\n{auto}"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("routers.r.default.auto.knob"), "{e}");
    let e = with(&format!(
        "[routers.r]\ndefault = {{ model = \"p/a\", auto = {{}} }}\n{auto}"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("one of `model`, `variants` or `auto`"), "{e}");
    // Variants pinning artifacts (staged rollouts).
    for (router, key, reason) in [
        (
            "default = { variants = [{ model = \"p/a\", auto = {}, weight = 100 }] }",
            "routers.r.default.variants[0]",
            "one of `model` or `auto`",
        ),
        (
            "default = { variants = [{ model = \"p/a\", weight = 50 }, { auto = { artifact = \" \" }, weight = 50 }] }",
            "routers.r.default.variants[1].auto.artifact",
            "is empty",
        ),
        (
            "default = { variants = [{ model = \"p/a\", weight = 50 }, { auto = { candidates = [\"p/b\"] }, weight = 50 }] }",
            "routers.r.default.variants[1].auto.candidates",
            "not an [auto] candidate",
        ),
    ] {
        refused(format!("[routers.r]\n{router}\n{auto}"), key, reason);
    }
    // [auto] itself: the old map form, priors, the unfamiliar policy, min_support, exploration.
    for (section, key, reason) in [
        (
            "candidates = { \"gpt-4-1106-preview\" = \"p/a\" }",
            "auto.candidates",
            "candidates = [\"p/a\"]",
        ),
        (
            "candidates = [\"p/a\", \"p/a\"]",
            "auto.candidates[1]",
            "listed twice",
        ),
        (
            "candidates = [\"p/a\"]\npriors = { \"p/b\" = { quality = 0.5 } }",
            "auto.priors.\"p/b\"",
            "not in auto.candidates",
        ),
        (
            "candidates = [\"p/a\"]\npriors = { \"p/a\" = { quality = 1.5 } }",
            "auto.priors.\"p/a\"",
            "not a probability",
        ),
        (
            "candidates = [\"p/a\"]\nunfamiliar = \"random\"",
            "auto.unfamiliar",
            "cheapest, strongest or predict",
        ),
        (
            "candidates = [\"p/a\"]\nmin_support = 2",
            "auto.min_support",
            "cosine similarity",
        ),
        (
            "candidates = [\"p/a\"]\nexplore = 1.5",
            "auto.explore",
            "share of decisions in [0, 1]",
        ),
        (
            "candidates = [\"p/a\"]\nexplore = 0.5\nonboard = 0.6",
            "auto.onboard",
            "beside explore = 0.5",
        ),
        (
            "candidates = [\"p/a\"]\nonboard_outcomes = 0",
            "auto.onboard_outcomes",
            "would onboard no candidate",
        ),
        (
            "candidates = [\"p/a\"]\nexplore_budget_usd_per_hour = -1",
            "auto.explore_budget_usd_per_hour",
            "amount of USD",
        ),
    ] {
        refused(format!("[auto]\n{section}\n"), key, reason);
    }
    // [judge]: what grades must be served here; the sample rate is a share.
    for (section, key, reason) in [
        (
            "sample_rate = 0.5",
            "judge.model",
            "name the model that grades",
        ),
        ("model = \"p/zzz\"", "judge.model", "not a served model"),
        ("model = \"auto\"", "judge.model", "`auto` cannot judge"),
        (
            "model = \"p/a\"\nsample_rate = 2",
            "judge.sample_rate",
            "share of requests",
        ),
        (
            "model = \"p/a\"\nrubric = \" \"",
            "judge.rubric",
            "is empty",
        ),
    ] {
        refused(format!("[judge]\n{section}\n"), key, reason);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_share_knob_reads_the_artifact_calibration() {
    let dir = tmp("share");
    write_artifact(&dir, None, "up/ok");
    let h = start(&dir, "up/ok").await;
    let ask = |share: f64| json!({"model": "auto", "messages": user("hello"), "router": {"strong_share": share}});
    let resp = h.post("/v1/route", ask(0.3)).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("calibration"),
        "{e}"
    );
    assert_eq!(e["error"]["param"], "router.strong_share");
    h.stop_and_read_logs().await;

    let table: Vec<f64> = (0..=100).map(|i| -0.5 + i as f64 / 100.0).collect();
    set_manifest(&dir, |m| {
        m["calibration"] = json!({"breakeven_quantiles": table})
    });
    let h = start(&dir, "up/ok").await;
    for (share, w) in [(1.0, -0.5), (0.25, 0.25), (0.0, 0.5)] {
        let v: Value = h.post("/v1/route", ask(share)).await.json().await.unwrap();
        assert!(
            (v["routing"]["cost_weight"].as_f64().unwrap() - w).abs() < 1e-9,
            "share {share}: {v}"
        );
        assert_eq!(v["routing"]["knob"], format!("strong_share={share}"));
    }
    let resp = h.post("/v1/route", ask(1.5)).await;
    assert_eq!(resp.status(), 400);
    h.stop_and_read_logs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_hot_reloads_on_change_keeps_serving_and_refuses_broken_ones() {
    let dir = tmp("reload");
    write_artifact(&dir, None, "up/ok");
    let h = std::sync::Arc::new(start(&dir, "up/ok").await);
    assert_eq!(auto_model(&h).await["artifact_version"], "test-artifact");
    // Requests keep flowing through every reload below; none may fail.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (h, stop) = (h.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0, vec![]);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, _, v) = h
                    .chat(json!({"model": "auto", "messages": user(&format!("question {ok}"))}))
                    .await;
                if status == 200 {
                    ok += 1
                } else {
                    failed.push(v)
                }
            }
            (ok, failed)
        })
    };
    set_manifest(&dir, |m| m["version"] = json!("v2"));
    wait_for_version(&h, "v2").await;
    // A broken artifact is refused and the current one stays.
    write_atomic(&dir.join("weights.json"), "{not json");
    for _ in 0..50 {
        let m = h.metrics().await;
        if m.contains("switchyard_auto_reload_failures_total 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let m = h.metrics().await;
    assert!(m.contains("switchyard_auto_reload_failures_total 1"), "{m}");
    assert!(m.contains("switchyard_auto_reloads_total 1"), "{m}");
    assert_eq!(auto_model(&h).await["artifact_version"], "v2");
    // Fixed again: picked up.
    write_artifact(&dir, None, "up/ok");
    set_manifest(&dir, |m| m["version"] = json!("v3"));
    wait_for_version(&h, "v3").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.await.unwrap();
    assert!(
        failed.is_empty(),
        "requests failed during reloads: {failed:?}"
    );
    assert!(ok > 5, "only {ok} requests ran during the reloads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_when_watching_is_off() {
    let dir = tmp("hup");
    write_artifact(&dir, None, "up/ok");
    let extra = format!(
        "[auto]\nartifact = \"{}\"\nencoder = \"{}\"\nwatch = false\nonboard = 0\ncandidates = [\"up/ok\", \"up/second\"]\n",
        dir.display(),
        encoder_dir().display()
    );
    let h = Harness::start_with(Options {
        extra,
        ..Options::default()
    })
    .await;
    set_manifest(&dir, |m| m["version"] = json!("after-hup"));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        auto_model(&h).await["artifact_version"],
        "test-artifact",
        "not watched: no reload without a signal"
    );
    common::sighup_self();
    wait_for_version(&h, "after-hup").await;
}
