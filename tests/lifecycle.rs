//! A server's life: the config reloaded on SIGHUP and on edit (a broken file refused, streams in
//! flight kept), and a shutdown that waits for requests at most the grace period.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

mod common;

use common::{user, Harness, Options};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reloads_on_sighup_and_on_edit_and_a_broken_file_is_refused() {
    let mock = switchyard::testing::upstream::MockUpstream::start("127.0.0.1:0")
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("sy-reload-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switchyard.toml");
    let write = |target: &str, server_extra: &str| {
        std::fs::write(
            &path,
            format!(
                "[server]\n{server_extra}\n[logging]\ndir = \"{}\"\n[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n[providers.mock]\nkind = \"mock\"\n[[models]]\nid = \"up/ok\"\n[[models]]\nid = \"up/second\"\nupstream = \"ok-second\"\n[[models]]\nid = \"mock/slow\"\nmock = {{ chunk_delay_ms = 100 }}\n[routers.r]\ndefault = {{ model = \"{target}\" }}\n",
                dir.join("logs").display(),
                mock.base_url()
            ),
        )
        .unwrap()
    };
    write("up/ok", "");
    let config = switchyard::config::Config::load(&path).unwrap();
    let server = switchyard::app::Server::start_from(config, "127.0.0.1:0", Some(path.clone()))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let served = || async {
        let v: Value = http
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": "router/r", "messages": user("x")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["model"].as_str().unwrap_or("").to_string()
    };
    let wait_for = |want: &'static str| {
        let served = &served;
        async move {
            for _ in 0..50 {
                if served().await == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("never served by {want}");
        }
    };
    let metric = |name: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let m = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            m.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")).map(String::from))
                .unwrap()
        }
    };
    assert_eq!(served().await, "up/ok");

    // A stream started on the old config finishes on it across the reload.
    let stream = {
        let (http, base) = (http.clone(), base.clone());
        tokio::spawn(async move {
            http.post(format!("{base}/v1/chat/completions"))
                .json(&json!({"model": "mock/slow", "stream": true, "messages": user("one two three four")}))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    write("up/second", "");
    common::sighup_self();
    wait_for("up/second").await;
    let text = stream.await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");

    // A broken file is refused; the running config stays.
    std::fs::write(&path, "[routers.r]\ndefault = { model = \"nope/nope\" }\n").unwrap();
    common::sighup_self();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(served().await, "up/second");
    assert_eq!(metric("switchyard_config_reload_failures_total").await, "1");
    assert_eq!(metric("switchyard_config_reloads_total").await, "1");

    // With watch_config on, an edit alone is enough.
    write("up/second", "watch_config = true");
    common::sighup_self();
    for _ in 0..50 {
        if metric("switchyard_config_reloads_total").await == "2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    write("up/ok", "watch_config = true");
    wait_for("up/ok").await;
    server.stop().await;
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_requests_at_most_the_grace_period() {
    let h = Harness::start_with(Options {
        server_extra: "shutdown_grace = \"300ms\"",
        ..Options::default()
    })
    .await;
    let (http, base) = (h.http.clone(), h.base.clone());
    let hanging = tokio::spawn(async move {
        http.post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": "up/hang-headers", "messages": user("x")}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    h.server.stop().await;
    assert!(
        t.elapsed() < Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
    assert!(hanging.await.unwrap().is_err(), "cut off, not answered");
}
