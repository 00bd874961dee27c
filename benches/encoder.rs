//! Encoder latency and throughput on this machine (needs `scripts/setup_encoder.sh`).
//! Single-prompt p50/p99 at 16/64/128/256 tokens on one thread, and prompts/s with one and two
//! sessions in parallel. `cargo bench --bench encoder`

use std::time::Instant;
use switchyard::encoder::{Encoder, DEFAULT_DIR};

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A text of about `tokens` tokens ("word" is one token; the tokenizer adds [CLS] and [SEP]).
fn text(tokens: usize) -> String {
    vec!["word"; tokens.saturating_sub(2)].join(" ")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_DIR);
    let enc = Encoder::load(&dir, 2, 1).unwrap_or_else(|e| panic!("{e}"));
    println!("| tokens | p50 ms | p99 ms | runs |\n|---|---|---|---|");
    for tokens in [16, 64, 128, 256] {
        let t = text(tokens);
        assert_eq!(enc.token_count(&t), tokens);
        for _ in 0..10 {
            enc.embed_one(&t).unwrap();
        }
        let mut ms: Vec<f64> = (0..200)
            .map(|_| {
                let s = Instant::now();
                enc.embed_one(&t).unwrap();
                s.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        println!(
            "| {tokens} | {:.2} | {:.2} | {} |",
            percentile(&mut ms, 0.5),
            percentile(&mut ms, 0.99),
            ms.len()
        );
    }
    let t = text(100);
    for threads in [1, 2] {
        let n = 300;
        let s = Instant::now();
        std::thread::scope(|sc| {
            for _ in 0..threads {
                sc.spawn(|| {
                    for _ in 0..n / threads {
                        enc.embed_one(&t).unwrap();
                    }
                });
            }
        });
        println!(
            "100-token prompts, {threads} thread(s): {:.0} prompts/s",
            n as f64 / s.elapsed().as_secs_f64()
        );
    }
}
