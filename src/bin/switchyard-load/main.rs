//! Load harness (loopback only, bounded in time and count).
//!
//! Starts `switchyard mock-upstream` and `switchyard serve` as child processes on free loopback
//! ports, then, for each fixed rate, sends an open-loop request stream first directly to the mock
//! and then through Switchyard, non-streaming and streaming. Reports p50/p99 latency and
//! time-to-first-byte for both and the difference (the overhead Switchyard adds), plus
//! Switchyard's peak RSS after each row (rows run in order, so it is the peak so far).
//!
//! A second table does the same for learned routing (`model: "auto"`, when its encoder and
//! a trained artifact under `models/` exist) beside a static route, at `--auto-rates`, with a
//! distinct ~200-token prompt per request so every decision runs the encoder (no cache hits);
//! it adds the decision time and the wait for a decision slot reported in `metadata.routing`.
//!
//! A fleet table (`--fleet-rates`) runs two replicas, requests alternating between them as a
//! load balancer would, first with the NDJSON default and then with the shared store
//! (`[store]`: PostgreSQL from `SWITCHYARD_LOAD_POSTGRES`, Redis from `SWITCHYARD_LOAD_REDIS`,
//! a virtual-key-free router key so both runs authenticate alike), and reports the latency the
//! store adds, its write throughput (records/s) and the deepest writer queue seen.
//!
//! Closed-loop tables (`--connections`, `--auto-connections`, `--soak`, see `closed.rs`) give
//! throughput at a concurrency, the gateway's CPU time per request and its memory after many
//! requests.
//!
//! `cargo run --release --bin switchyard-load -- --rates 500,2000,5000 --auto-rates 50,200 --seconds 4`

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: it prints its report and stops on any setup failure"
)]

mod closed;
mod tables;

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

struct Args {
    rates: Vec<u32>,
    auto_rates: Vec<u32>,
    /// Admission table: a rate above saturation, and the in-flight bound of the bounded server.
    overload_rate: u32,
    max_in_flight: usize,
    fleet_rates: Vec<u32>,
    /// Closed-loop tables: connection counts for the proxy and for `auto`, and the soak length.
    connections: Vec<usize>,
    auto_connections: Vec<usize>,
    soak: usize,
    /// Which of the closed-loop modes run: non-streaming, streaming.
    modes: Vec<bool>,
    seconds: f64,
    max_requests: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        rates: vec![500, 2000, 5000],
        auto_rates: vec![50, 200],
        overload_rate: 0,
        max_in_flight: 32,
        fleet_rates: vec![],
        connections: vec![],
        auto_connections: vec![],
        soak: 0,
        modes: vec![false, true],
        seconds: 4.0,
        max_requests: 25_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--rates" => {
                args.rates = value
                    .split(',')
                    .filter_map(|r| r.trim().parse().ok())
                    .collect()
            }
            "--auto-rates" => {
                args.auto_rates = value
                    .split(',')
                    .filter_map(|r| r.trim().parse().ok())
                    .collect()
            }
            "--fleet-rates" => {
                args.fleet_rates = value
                    .split(',')
                    .filter_map(|r| r.trim().parse().ok())
                    .collect()
            }
            "--connections" => args.connections = list(&value),
            "--auto-connections" => args.auto_connections = list(&value),
            "--modes" => {
                args.modes = value
                    .split(',')
                    .filter_map(|m| match m.trim() {
                        "non-stream" => Some(false),
                        "stream" => Some(true),
                        _ => None,
                    })
                    .collect()
            }
            "--soak" => args.soak = value.parse().unwrap_or(0).min(5_000_000),
            "--overload-rate" => args.overload_rate = value.parse().unwrap_or(0).min(20_000),
            "--max-in-flight" => args.max_in_flight = value.parse().unwrap_or(32).max(1),
            "--seconds" => args.seconds = value.parse().unwrap_or(args.seconds).clamp(0.5, 60.0),
            "--max-requests" => {
                args.max_requests = value.parse().unwrap_or(args.max_requests).min(200_000)
            }
            other => {
                eprintln!("unknown argument {other}; use --rates 500,2000 --auto-rates 50,200 --connections 1,16,64 --modes non-stream,stream --auto-connections 8 --soak 700000 --overload-rate 6000 --max-in-flight 32 --seconds 4 --max-requests 25000");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    args
}

/// A comma-separated list of counts (`none` or anything unparsable gives an empty list).
fn list(value: &str) -> Vec<usize> {
    value
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect()
}

/// Starts a child that prints `... listening on http://ADDR...` and returns it with ADDR.
fn spawn(bin: &std::path::Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(bin)
        .args(args)
        .env("SWITCHYARD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start child process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches("/v1")
        .to_string();
    (child, url)
}

/// The learned-routing part of the config when the encoder and a trained artifact are present
/// (run from the repo root): the artifact's candidates as served models of their own providers,
/// all answered by the mock upstream at the artifact's training prices, and `[auto]` over them.
fn auto_section(mock_url: &str) -> String {
    let root = std::env::current_dir().unwrap();
    let Ok(dir) = switchyard_learn::artifact::artifact_dir(&root.join("models")) else {
        return String::new();
    };
    let Ok(artifact) = switchyard_learn::artifact::Artifact::load(&dir) else {
        return String::new();
    };
    let encoder = root.join(switchyard_learn::embed::dir_for(
        &artifact.manifest.encoder.id,
    ));
    if !encoder.join("manifest.json").is_file() {
        return String::new();
    }
    let mut out = String::new();
    let mut providers: Vec<&str> = vec!["up"];
    for c in &artifact.weights.candidates {
        let provider = c.model.split('/').next().unwrap_or("");
        if !providers.contains(&provider) {
            providers.push(provider);
            out.push_str(&format!(
                "[providers.{provider:?}]\nkind = \"openai\"\nbase_url = \"{mock_url}/v1\"\n"
            ));
        }
        out.push_str(&format!(
            "[[models]]\nid = {:?}\nupstream = \"ok\"\ninput_price_per_mtok = {}\noutput_price_per_mtok = {}\n",
            c.model, c.input_price_per_mtok, c.output_price_per_mtok
        ));
    }
    let ids: Vec<String> = artifact
        .weights
        .candidates
        .iter()
        .map(|c| format!("{:?}", c.model))
        .collect();
    out + &format!(
        "[auto]\nartifact = \"{}\"\nencoder = \"{}\"\ncandidates = [{}]\n",
        dir.display(),
        encoder.display(),
        ids.join(", ")
    )
}

/// A memory figure of `/proc/PID/status` in MB: `VmRSS:` (now) or `VmHWM:` (peak so far).
fn rss_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

#[derive(Default)]
struct Samples {
    latency: Vec<f64>,
    ttfb: Vec<f64>,
    /// `metadata.routing.decision_ms` / `queue_ms` of learned-routing answers.
    decision: Vec<f64>,
    queue: Vec<f64>,
    /// Time to the 503/429 of requests the server shed.
    shed: Vec<f64>,
    errors: usize,
}

/// About 200 tokens of prompt; `Prompt::Distinct` prefixes the request number.
const LONG_PROMPT: &str = "Our team maintains a billing service that receives about forty thousand invoices a day from \
    partners in twelve countries. Each invoice arrives as JSON, is validated against a schema, converted \
    to the partner's currency, and stored. Last week the nightly reconciliation job started taking six \
    hours instead of forty minutes, and the database CPU stays at ninety percent during the run. The job \
    reads every invoice of the day, joins it with the exchange-rate table, and writes a summary row per \
    partner. Nothing in the code changed, but the partner count doubled. Explain the most likely causes, \
    how to confirm each one with the least effort, and what you would change first, in order of impact.";

/// What each request asks.
#[derive(Clone, Copy, PartialEq)]
enum Prompt {
    /// One short prompt for every request.
    Fixed,
    /// A distinct ~200-token prompt per request.
    Distinct,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Open-loop load: requests start on a fixed schedule whatever the latency; each latency is
/// measured from its scheduled start (no coordinated omission).
#[allow(clippy::too_many_arguments)] // one phase = target, request shape and schedule
async fn run_phase(
    client: &reqwest::Client,
    targets: &[&str],
    model: &str,
    stream: bool,
    prompt: Prompt,
    rate: u32,
    secs: f64,
    max: usize,
) -> Samples {
    let total = ((rate as f64 * secs) as usize).min(max);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let samples = Arc::new(Mutex::new(Samples::default()));
    let fixed = Arc::new(json!({"model": model, "stream": stream,
        "messages": [{"role": "user", "content": "Summarise the plot of Hamlet in one sentence."}]}));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let body = match prompt {
            Prompt::Fixed => fixed.clone(),
            Prompt::Distinct => Arc::new(json!({"model": model, "stream": stream,
                "messages": [{"role": "user", "content": format!("Request {i}. {LONG_PROMPT}")}]})),
        };
        // Round-robin over the targets (replicas behind a load balancer).
        let url = targets[i % targets.len()].to_string();
        let (client, samples) = (client.clone(), samples.clone());
        tasks.push(tokio::spawn(async move {
            let result = tokio::time::timeout(Duration::from_secs(10), async {
                let mut resp = client.post(&url).json(&*body).send().await.ok()?;
                if matches!(resp.status().as_u16(), 429 | 503) {
                    return Some(Err(scheduled.elapsed()));
                }
                if !resp.status().is_success() {
                    return None;
                }
                let mut ttfb = None;
                let mut bytes = Vec::new();
                while let Some(chunk) = resp.chunk().await.ok()? {
                    if ttfb.is_none() && !chunk.is_empty() {
                        ttfb = Some(scheduled.elapsed());
                    }
                    if !stream {
                        bytes.extend_from_slice(&chunk);
                    }
                }
                let total = scheduled.elapsed();
                let routing = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .map(|v| v["metadata"]["routing"].clone());
                Some(Ok((ttfb.unwrap_or(total), total, routing)))
            })
            .await;
            let mut s = samples.lock().await;
            match result {
                Ok(Some(Err(shed))) => s.shed.push(shed.as_secs_f64() * 1000.0),
                Ok(Some(Ok((ttfb, total, routing)))) => {
                    s.ttfb.push(ttfb.as_secs_f64() * 1000.0);
                    s.latency.push(total.as_secs_f64() * 1000.0);
                    if let Some(r) = routing.filter(|r| r["decision_ms"].is_number()) {
                        s.decision
                            .push(r["decision_ms"].as_f64().unwrap_or(f64::NAN));
                        s.queue.push(r["queue_ms"].as_f64().unwrap_or(f64::NAN));
                    }
                }
                _ => s.errors += 1,
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(samples).ok().unwrap().into_inner()
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let bin = std::env::current_exe()
        .unwrap()
        .with_file_name("switchyard");
    assert!(
        bin.exists(),
        "build the server first: cargo build --release (looked for {})",
        bin.display()
    );
    let (mut mock, mock_url) = spawn(&bin, &["mock-upstream", "--listen", "127.0.0.1:0"]);
    let dir = std::env::temp_dir().join(format!("switchyard-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("load.toml");
    let auto = auto_section(&mock_url);
    if auto.is_empty() {
        println!("(no trained artifact under models/ or no encoder for it: the learned-routing table is skipped)\n");
    }
    std::fs::write(
        &config,
        format!(
            "[logging]\ndir = \"{}\"\n[providers.up]\nkind = \"openai\"\nbase_url = \"{mock_url}/v1\"\n\
             [[models]]\nid = \"up/ok\"\nupstream = \"ok\"\ninput_price_per_mtok = 1.0\noutput_price_per_mtok = 2.0\n\
             [[models]]\nid = \"up/strong\"\nupstream = \"ok\"\ninput_price_per_mtok = 10.0\noutput_price_per_mtok = 30.0\n\
             [[models]]\nid = \"up/weak\"\nupstream = \"ok\"\ninput_price_per_mtok = 0.6\noutput_price_per_mtok = 0.6\n{auto}",
            dir.join("logs").display()
        ),
    )
    .unwrap();
    let (mut server, server_url) = spawn(
        &bin,
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .unwrap();

    println!(
        "Switchyard RSS after start: {:.1} MB\n",
        rss_mb(server.id(), "VmRSS:")
    );
    println!("| mode | rate (RPS) | requests | direct p50 / p99 ms | via Switchyard p50 / p99 ms | added p50 / p99 ms | added TTFB p50 / p99 ms | errors direct / via | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for stream in [false, true] {
        for &rate in &args.rates {
            // Warm both paths' connection pools.
            run_phase(
                &client,
                &[&format!("{mock_url}/v1/chat/completions")],
                "ok",
                stream,
                Prompt::Fixed,
                rate,
                0.3,
                2000,
            )
            .await;
            run_phase(
                &client,
                &[&format!("{server_url}/v1/chat/completions")],
                "up/ok",
                stream,
                Prompt::Fixed,
                rate,
                0.3,
                2000,
            )
            .await;
            let mut d = run_phase(
                &client,
                &[&format!("{mock_url}/v1/chat/completions")],
                "ok",
                stream,
                Prompt::Fixed,
                rate,
                args.seconds,
                args.max_requests,
            )
            .await;
            let mut s = run_phase(
                &client,
                &[&format!("{server_url}/v1/chat/completions")],
                "up/ok",
                stream,
                Prompt::Fixed,
                rate,
                args.seconds,
                args.max_requests,
            )
            .await;
            let (d50, d99, s50, s99) = (
                pct(&mut d.latency, 0.5),
                pct(&mut d.latency, 0.99),
                pct(&mut s.latency, 0.5),
                pct(&mut s.latency, 0.99),
            );
            let (dt50, dt99, st50, st99) = (
                pct(&mut d.ttfb, 0.5),
                pct(&mut d.ttfb, 0.99),
                pct(&mut s.ttfb, 0.5),
                pct(&mut s.ttfb, 0.99),
            );
            println!(
                "| {} | {rate} | {} | {d50:.3} / {d99:.3} | {s50:.3} / {s99:.3} | {:.3} / {:.3} | {:.3} / {:.3} | {} / {} | {:.1} |",
                if stream { "stream" } else { "non-stream" },
                s.latency.len() + s.errors,
                s50 - d50,
                s99 - d99,
                st50 - dt50,
                st99 - dt99,
                d.errors,
                s.errors,
                rss_mb(server.id(), "VmHWM:"),
            );
        }
    }
    if !auto.is_empty() && !args.auto_rates.is_empty() {
        println!("\nLearned routing (`auto`) beside a static route, distinct ~200-token prompts, non-streaming:\n");
        println!("| route | rate (RPS) | requests | direct p50 / p99 ms | via Switchyard p50 / p99 ms | added p50 / p99 ms | decision p50 / p99 ms | decision-slot wait p50 / p99 ms | errors | peak RSS MB |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        let direct = format!("{mock_url}/v1/chat/completions");
        let via = format!("{server_url}/v1/chat/completions");
        for &rate in &args.auto_rates {
            let secs = args.seconds;
            run_phase(
                &client,
                &[&via],
                "auto",
                false,
                Prompt::Distinct,
                rate,
                0.5,
                200,
            )
            .await;
            let mut d = run_phase(
                &client,
                &[&direct],
                "ok",
                false,
                Prompt::Distinct,
                rate,
                secs,
                args.max_requests,
            )
            .await;
            for model in ["up/weak", "auto"] {
                let mut s = run_phase(
                    &client,
                    &[&via],
                    model,
                    false,
                    Prompt::Distinct,
                    rate,
                    secs,
                    args.max_requests,
                )
                .await;
                let (d50, d99) = (pct(&mut d.latency, 0.5), pct(&mut d.latency, 0.99));
                let (s50, s99) = (pct(&mut s.latency, 0.5), pct(&mut s.latency, 0.99));
                println!(
                    "| {} | {rate} | {} | {d50:.3} / {d99:.3} | {s50:.3} / {s99:.3} | {:.3} / {:.3} | {:.2} / {:.2} | {:.2} / {:.2} | {} | {:.1} |",
                    if model == "auto" { "auto (learned)" } else { "static up/weak" },
                    s.latency.len() + s.errors,
                    s50 - d50,
                    s99 - d99,
                    pct(&mut s.decision, 0.5),
                    pct(&mut s.decision, 0.99),
                    pct(&mut s.queue, 0.5),
                    pct(&mut s.queue, 0.99),
                    s.errors,
                    rss_mb(server.id(), "VmHWM:"),
                );
            }
        }
    }
    if !args.connections.is_empty() {
        closed::closed_table(&client, &mock_url, &server_url, server.id(), &args).await;
    }
    if !auto.is_empty() && !args.auto_connections.is_empty() {
        closed::auto_closed_table(&client, &server_url, server.id(), &args).await;
    }
    if args.soak > 0 {
        closed::soak_table(&client, &server_url, server.id(), args.soak).await;
    }
    if args.overload_rate > 0 {
        tables::overload_table(&bin, &client, &mock_url, &dir, &args).await;
    }
    if !args.fleet_rates.is_empty() {
        tables::fleet_table(&bin, &mock_url, &dir, &args).await;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status();
    let _ = server.wait();
    let _ = mock.kill();
    let _ = mock.wait();
    std::fs::remove_dir_all(&dir).ok();
}
