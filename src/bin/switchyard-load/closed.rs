//! Closed-loop tables: a fixed number of connections, each sending its next request as soon as
//! the last one is answered, first straight to the mock and then through Switchyard. They give
//! what the open-loop tables cannot: throughput (req/s) at a concurrency, the gateway's CPU time
//! per request (its `/proc` user + system time over the phase, divided by the requests it
//! served), the latency one connection adds, and memory after many requests (`--soak`).

use super::*;

/// What one closed-loop phase measured.
#[derive(Default)]
pub struct Closed {
    pub requests: usize,
    pub errors: usize,
    pub secs: f64,
    pub latency: Vec<f64>,
    pub decision: Vec<f64>,
}

impl Closed {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// User + system CPU seconds a process has used (`/proc/PID/stat`, clock ticks of 1/100 s).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// A request body, serialised once per phase (or per request for distinct prompts).
fn body(model: &str, stream: bool, prompt: Prompt, i: usize) -> bytes::Bytes {
    let content = match prompt {
        Prompt::Fixed => "Summarise the plot of Hamlet in one sentence.".to_string(),
        Prompt::Distinct => format!("Request {i}. {LONG_PROMPT} {LONG_PROMPT_TAIL}"),
    };
    serde_json::to_vec(&json!({"model": model, "stream": stream,
        "messages": [{"role": "user", "content": content}]}))
    .unwrap()
    .into()
}

/// About 100 more tokens: with [`LONG_PROMPT`], the ~300-token prompts of the `auto` rows.
const LONG_PROMPT_TAIL: &str = "For each cause, say which metric or query log would show it, \
    what a healthy value looks like for a job of this size, and how long the check takes. Then \
    sketch the change you would ship first, how you would roll it out without pausing invoice \
    intake, and how you would know within one night that it worked. Keep the answer practical: \
    the team has two engineers, one staging database, and a maintenance window on Sundays.";

/// What a closed-loop phase sends, and where: `conns` connections posting to `url` for `model`.
#[derive(Clone, Copy)]
pub struct Phase<'a> {
    pub url: &'a str,
    pub model: &'a str,
    pub stream: bool,
    pub prompt: Prompt,
    pub conns: usize,
}

/// The phase's connections for `secs` (or until `max` requests), each sending back to back.
pub async fn closed_phase(
    client: &reqwest::Client,
    phase: Phase<'_>,
    secs: f64,
    max: usize,
) -> Closed {
    let Phase {
        url,
        model,
        stream,
        prompt,
        conns,
    } = phase;
    let fixed = body(model, stream, prompt, 0);
    let issued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (client, url, fixed, issued) = (
            client.clone(),
            url.to_string(),
            fixed.clone(),
            issued.clone(),
        );
        let model = model.to_string();
        tasks.push(tokio::spawn(async move {
            let mut out = Closed::default();
            loop {
                let i = issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= max || Instant::now() >= deadline {
                    break;
                }
                let b = match prompt {
                    Prompt::Fixed => fixed.clone(),
                    Prompt::Distinct => body(&model, stream, prompt, i),
                };
                let sent = Instant::now();
                let answer = async {
                    let resp = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(b)
                        .send()
                        .await
                        .ok()?;
                    if !resp.status().is_success() {
                        return None;
                    }
                    resp.bytes().await.ok()
                };
                match tokio::time::timeout(Duration::from_secs(10), answer).await {
                    Ok(Some(bytes)) if !stream || bytes.ends_with(b"data: [DONE]\n\n") => {
                        out.latency.push(sent.elapsed().as_secs_f64() * 1000.0);
                        out.requests += 1;
                        if prompt == Prompt::Distinct {
                            if let Some(ms) = serde_json::from_slice::<serde_json::Value>(&bytes)
                                .ok()
                                .and_then(|v| v["metadata"]["routing"]["decision_ms"].as_f64())
                            {
                                out.decision.push(ms);
                            }
                        }
                    }
                    _ => out.errors += 1,
                }
            }
            out
        }));
    }
    let mut all = Closed::default();
    for t in tasks {
        let c = t.await.unwrap();
        all.requests += c.requests;
        all.errors += c.errors;
        all.latency.extend(c.latency);
        all.decision.extend(c.decision);
    }
    all.secs = start.elapsed().as_secs_f64();
    all
}

/// Throughput and CPU per request at each of `--connections`, non-streaming and streaming,
/// direct and through Switchyard (request log on), interleaved: each cell runs direct, via,
/// direct, via and reports the mean of its two runs.
pub async fn closed_table(
    client: &reqwest::Client,
    mock_url: &str,
    server_url: &str,
    server_pid: u32,
    args: &Args,
) {
    println!("\nClosed loop (each connection sends its next request when the last is answered), upstream = the mock, request log on:\n");
    println!("| mode | connections | direct req/s | via Switchyard req/s | via / direct | direct p50 ms | via p50 ms | added p50 ms | gateway CPU ms / request | errors | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let (direct_url, via_url) = (
        format!("{mock_url}/v1/chat/completions"),
        format!("{server_url}/v1/chat/completions"),
    );
    for &stream in &args.modes {
        for &conns in &args.connections {
            let (mut d_rps, mut v_rps, mut cpu, mut errors) = (0.0, 0.0, 0.0, 0);
            let (mut d_lat, mut v_lat) = (Vec::new(), Vec::new());
            let direct = Phase {
                url: &direct_url,
                model: "ok",
                stream,
                prompt: Prompt::Fixed,
                conns,
            };
            let via = Phase {
                url: &via_url,
                model: "up/ok",
                ..direct
            };
            closed_phase(client, via, 0.3, 5000).await;
            for _ in 0..2 {
                let d = closed_phase(client, direct, args.seconds, args.max_requests).await;
                let before = cpu_secs(server_pid);
                let v = closed_phase(client, via, args.seconds, args.max_requests).await;
                cpu += (cpu_secs(server_pid) - before) * 1000.0 / v.requests.max(1) as f64 / 2.0;
                d_rps += d.rps() / 2.0;
                v_rps += v.rps() / 2.0;
                errors += d.errors + v.errors;
                d_lat.extend(d.latency);
                v_lat.extend(v.latency);
            }
            let (d50, v50) = (pct(&mut d_lat, 0.5), pct(&mut v_lat, 0.5));
            println!(
                "| {} | {conns} | {d_rps:.0} | {v_rps:.0} | {:.2} | {d50:.3} | {v50:.3} | {:.3} | {cpu:.3} | {errors} | {:.1} |",
                if stream { "stream" } else { "non-stream" },
                v_rps / d_rps,
                v50 - d50,
                rss_mb(server_pid, "VmHWM:"),
            );
        }
    }
}

/// `auto` and a static route through the same server, closed loop at `--auto-connections`,
/// distinct ~300-token prompts (every decision runs the encoder): decisions/s and CPU each.
pub async fn auto_closed_table(
    client: &reqwest::Client,
    server_url: &str,
    server_pid: u32,
    args: &Args,
) {
    println!("\nLearned routing, closed loop, distinct ~300-token prompts, non-streaming:\n");
    println!("| route | connections | requests | req/s | gateway CPU ms / request | decision p50 / p99 ms | errors | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|");
    let via = format!("{server_url}/v1/chat/completions");
    for &conns in &args.auto_connections {
        let phase = |model| Phase {
            url: &via,
            model,
            stream: false,
            prompt: Prompt::Distinct,
            conns,
        };
        closed_phase(client, phase("auto"), 0.5, 500).await;
        for model in ["up/weak", "auto"] {
            let before = cpu_secs(server_pid);
            let mut c = closed_phase(client, phase(model), args.seconds, args.max_requests).await;
            let cpu = (cpu_secs(server_pid) - before) * 1000.0 / c.requests.max(1) as f64;
            println!(
                "| {} | {conns} | {} | {:.0} | {cpu:.3} | {:.2} / {:.2} | {} | {:.1} |",
                if model == "auto" {
                    "auto (learned)"
                } else {
                    "static up/weak"
                },
                c.requests,
                c.rps(),
                pct(&mut c.decision, 0.5),
                pct(&mut c.decision, 0.99),
                c.errors,
                rss_mb(server_pid, "VmHWM:"),
            );
        }
    }
}

/// Memory after many requests: `--soak N` requests, non-streaming, 64 connections, distinct
/// request ids (every request is logged and indexed), RSS read at six points along the way.
pub async fn soak_table(client: &reqwest::Client, server_url: &str, server_pid: u32, total: usize) {
    println!("\nMemory under sustained load (closed loop, 64 connections, non-streaming, request log on):\n");
    println!("| requests served | RSS MB | peak RSS MB | req/s over the step | errors |");
    println!("|---|---|---|---|---|");
    let via = format!("{server_url}/v1/chat/completions");
    let step = total.div_ceil(6).max(1);
    let mut served = 0;
    while served < total {
        let phase = Phase {
            url: &via,
            model: "up/ok",
            stream: false,
            prompt: Prompt::Fixed,
            conns: 64,
        };
        let c = closed_phase(client, phase, 3600.0, step).await;
        served += c.requests + c.errors;
        println!(
            "| {served} | {:.1} | {:.1} | {:.0} | {} |",
            rss_mb(server_pid, "VmRSS:"),
            rss_mb(server_pid, "VmHWM:"),
            c.rps(),
            c.errors
        );
    }
}
