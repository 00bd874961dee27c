//! The load harness's tables beyond latency: admission control under overload, and a fleet of
//! replicas writing to the shared store.

use super::*;

/// Admission control: a server bounded at `--max-in-flight` and one at the default bound, each
/// idle (200 RPS) and then above saturation (`--overload-rate`), streaming. Admitted requests
/// should keep their idle latency and the rest be shed at once.
pub async fn overload_table(
    bin: &std::path::Path,
    client: &reqwest::Client,
    mock_url: &str,
    dir: &std::path::Path,
    args: &Args,
) {
    println!("\nAdmission control, streaming, upstream = the mock:\n");
    println!("| server | rate (RPS) | requests | admitted | admitted p50 / p99 ms | shed 503 | shed answer p99 ms | errors | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (label, bound) in [
        (
            format!("max_in_flight = {}", args.max_in_flight),
            args.max_in_flight,
        ),
        ("max_in_flight = 1024 (default)".to_string(), 1024),
    ] {
        let config = dir.join(format!("overload-{bound}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nmax_in_flight = {bound}\n[logging]\ndir = \"{}\"\n[providers.up]\nkind = \"openai\"\nbase_url = \"{mock_url}/v1\"\n[[models]]\nid = \"up/ok\"\nupstream = \"ok\"\n",
                dir.join(format!("logs-{bound}")).display()
            ),
        )
        .unwrap();
        let (mut server, url) = spawn(
            bin,
            &[
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
        );
        let url = format!("{url}/v1/chat/completions");
        for rate in [200, args.overload_rate] {
            run_phase(
                client,
                &[&url],
                "up/ok",
                true,
                Prompt::Fixed,
                rate.min(1000),
                0.3,
                300,
            )
            .await;
            let mut s = run_phase(
                client,
                &[&url],
                "up/ok",
                true,
                Prompt::Fixed,
                rate,
                args.seconds,
                args.max_requests,
            )
            .await;
            println!(
                "| {label} | {rate} | {} | {} | {:.3} / {:.3} | {} | {:.3} | {} | {:.1} |",
                s.latency.len() + s.shed.len() + s.errors,
                s.latency.len(),
                pct(&mut s.latency, 0.5),
                pct(&mut s.latency, 0.99),
                s.shed.len(),
                pct(&mut s.shed, 0.99),
                s.errors,
                rss_mb(server.id(), "VmHWM:"),
            );
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(server.id().to_string())
            .status();
        let _ = server.wait();
    }
}

/// A number from a Prometheus text line `NAME VALUE` (summed over the replicas).
async fn metric(client: &reqwest::Client, urls: &[String], name: &str) -> f64 {
    let mut sum = 0.0;
    for u in urls {
        let Ok(r) = client.get(format!("{u}/metrics")).send().await else {
            continue;
        };
        let text = r.text().await.unwrap_or_default();
        sum += text
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    sum
}

/// Two replicas behind a round-robin client: the NDJSON default, then the shared store.
pub async fn fleet_table(
    bin: &std::path::Path,
    mock_url: &str,
    dir: &std::path::Path,
    args: &Args,
) {
    if std::env::var("SWITCHYARD_LOAD_POSTGRES").is_err()
        || std::env::var("SWITCHYARD_LOAD_REDIS").is_err()
    {
        println!("\n(fleet table skipped: set SWITCHYARD_LOAD_POSTGRES and SWITCHYARD_LOAD_REDIS)");
        return;
    }
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", "Bearer bench".parse().unwrap());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .default_headers(headers)
        .build()
        .unwrap();
    println!("\nTwo replicas, requests alternating between them, non-streaming:\n");
    println!("| logs | rate (RPS) | requests | p50 / p99 ms | added by the store p50 / p99 ms | store writes (records/s) | deepest writer queue | dropped | errors |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut baseline: Vec<(f64, f64)> = Vec::new();
    for (mode, store) in [
        ("NDJSON (default)", ""),
        ("NDJSON + PostgreSQL + Redis", "[store]\npostgres_env = \"SWITCHYARD_LOAD_POSTGRES\"\nredis_env = \"SWITCHYARD_LOAD_REDIS\"\n"),
    ] {
        let mut servers = Vec::new();
        let mut urls = Vec::new();
        for r in 0..2 {
            let config = dir.join(format!("fleet-{}-{r}.toml", store.is_empty()));
            std::fs::write(
                &config,
                format!(
                    "[server]\napi_keys = [\"bench\"]\n[logging]\ndir = \"{}\"\nlog_text = false\n[providers.up]\nkind = \"openai\"\nbase_url = \"{mock_url}/v1\"\n[[models]]\nid = \"up/ok\"\nupstream = \"ok\"\ninput_price_per_mtok = 1.0\noutput_price_per_mtok = 2.0\n{store}",
                    dir.join(format!("fleet-logs-{}-{r}", store.is_empty())).display()
                ),
            )
            .unwrap();
            let (server, url) = spawn(bin, &["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
            servers.push(server);
            urls.push(url);
        }
        let targets: Vec<String> = urls.iter().map(|u| format!("{u}/v1/chat/completions")).collect();
        let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
        for (i, &rate) in args.fleet_rates.iter().enumerate() {
            run_phase(&client, &targets, "up/ok", false, Prompt::Fixed, rate, 0.3, 2000).await;
            let written_before = metric(&client, &urls, "switchyard_store_records_total{outcome=\"written\"}").await;
            let dropped_before = metric(&client, &urls, "switchyard_store_records_total{outcome=\"dropped\"}").await;
            // The deepest writer queue, sampled every 20 ms while the phase runs.
            let deepest = Arc::new(Mutex::new(0.0f64));
            let sampling = !store.is_empty();
            let sampler = {
                let (client, urls, deepest) = (client.clone(), urls.clone(), deepest.clone());
                tokio::spawn(async move {
                    // (sampled only with the store; aborted when the phase ends)
                    if !sampling {
                        return;
                    }
                    loop {
                        let q = metric(&client, &urls, "switchyard_store_queue").await;
                        let mut d = deepest.lock().await;
                        *d = d.max(q);
                        drop(d);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            };
            let started = Instant::now();
            let mut s = run_phase(&client, &targets, "up/ok", false, Prompt::Fixed, rate, args.seconds, args.max_requests).await;
            // Let the writers catch up, then count what they wrote in the phase.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let elapsed = started.elapsed().as_secs_f64();
            sampler.abort();
            let written = metric(&client, &urls, "switchyard_store_records_total{outcome=\"written\"}").await - written_before;
            let dropped = metric(&client, &urls, "switchyard_store_records_total{outcome=\"dropped\"}").await - dropped_before;
            let (p50, p99) = (pct(&mut s.latency, 0.5), pct(&mut s.latency, 0.99));
            let added = if store.is_empty() {
                baseline.push((p50, p99));
                "—".to_string()
            } else {
                let (b50, b99) = baseline[i];
                format!("{:.3} / {:.3}", p50 - b50, p99 - b99)
            };
            let (writes, queue) = if store.is_empty() {
                ("—".to_string(), "—".to_string())
            } else {
                (format!("{:.0}", written / elapsed), format!("{:.0}", *deepest.lock().await))
            };
            println!(
                "| {mode} | {rate} | {} | {p50:.3} / {p99:.3} | {added} | {writes} | {queue} | {} | {} |",
                s.latency.len() + s.errors,
                if store.is_empty() { "—".to_string() } else { format!("{dropped:.0}") },
                s.errors,
            );
        }
        for mut server in servers {
            let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
            let _ = server.wait();
        }
    }
}
