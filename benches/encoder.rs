//! Encoder latency and throughput on this machine, for each encoder that is set up: MiniLM
//! (ONNX, `scripts/setup_encoder.sh`) and potion-base-8M (static,
//! `scripts/setup_static_encoder.sh`). Single-prompt p50/p99 at 16/64/128/256 tokens on one
//! thread, and prompts/s with one and two threads in parallel. `cargo bench --bench encoder`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

use std::time::Instant;
use switchyard_learn::embed::Embed;
use switchyard_learn::embed::{Encoder, DEFAULT_DIR, STATIC_DIR};

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A text the encoder reads as exactly `tokens` tokens ("word" is one token; the ONNX
/// encoder's count includes [CLS] and [SEP]).
fn text(enc: &Encoder, tokens: usize) -> String {
    let specials = enc.token_count("word") - 1;
    vec!["word"; tokens - specials].join(" ")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for dir in [DEFAULT_DIR, STATIC_DIR] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        match Encoder::load(&dir, 2, 1) {
            Ok(enc) => bench(&enc),
            Err(e) => println!("(skipped {}: {e})\n", dir.display()),
        }
    }
}

fn bench(enc: &Encoder) {
    println!("{}:\n", enc.id());
    println!("| tokens | p50 ms | p99 ms | runs |\n|---|---|---|---|");
    for tokens in [16, 64, 128, 256] {
        let t = text(enc, tokens);
        assert_eq!(enc.token_count(&t), tokens);
        for _ in 0..10 {
            enc.embed(&t).unwrap();
        }
        let mut ms: Vec<f64> = (0..200)
            .map(|_| {
                let s = Instant::now();
                enc.embed(&t).unwrap();
                s.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        println!(
            "| {tokens} | {:.3} | {:.3} | {} |",
            percentile(&mut ms, 0.5),
            percentile(&mut ms, 0.99),
            ms.len()
        );
    }
    let t = text(enc, 100);
    for threads in [1, 2] {
        let n = 300;
        let s = Instant::now();
        std::thread::scope(|sc| {
            for _ in 0..threads {
                sc.spawn(|| {
                    for _ in 0..n / threads {
                        enc.embed(&t).unwrap();
                    }
                });
            }
        });
        println!(
            "100-token prompts, {threads} thread(s): {:.0} prompts/s",
            n as f64 / s.elapsed().as_secs_f64()
        );
    }
    println!();
}
