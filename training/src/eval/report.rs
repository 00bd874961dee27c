//! Writes `report.md`, `metrics.json` and the SVG plots of an evaluation.

use super::metrics::{Ends, Point, Summary};
use super::svg::{chart, Series, Style};
use super::SubsetResult;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;

/// One calibration decile: mean predicted quality, observed good-answer rate, prompts.
pub type Decile = (f64, f64, usize);

/// The output-token model's error on one benchmark for one candidate.
pub struct OutputError {
    pub source: String,
    pub model: String,
    pub n: usize,
    pub median_relative_error: f64,
    pub median_predicted: f64,
    pub median_observed: f64,
}

/// Everything the report states.
pub struct Context<'a> {
    pub version: &'a str,
    pub artifact_dir: &'a Path,
    pub data: &'a Path,
    pub data_sha: &'a str,
    pub seed: u64,
    pub bootstrap: usize,
    pub split_col: &'a str,
    pub partition: &'a str,
    /// Prompts with outcomes for every candidate: train, val, evaluated.
    pub sizes: [usize; 3],
    pub test_ids: String,
    pub train_val_ids: String,
    pub names: &'a [String],
    pub strong: usize,
    pub cheap: usize,
    pub knn_k: usize,
    pub knobs: &'a [Value],
    /// The server's named knobs (name, cost weight) on all evaluated prompts.
    pub presets: &'a [(&'a str, f64, Point)],
    pub subsets: &'a [SubsetResult],
    /// Per model: (mean predicted, observed good rate, n) per decile.
    pub calibration: &'a [(String, Vec<Decile>)],
    pub encoder_id: &'a str,
    pub output_errors: &'a [OutputError],
    /// (support threshold, share of evaluated prompts below it).
    pub support: (f64, f64),
}

const PER_1K: f64 = 1000.0;

fn f3(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.3}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("not reached".into(), |v| format!("{:.1}%", v * 100.0))
}

fn usd(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("${:.3}", v * PER_1K))
}

fn with_ci(value: String, ci: Option<&(f64, f64)>, fmt: fn(Option<f64>) -> String) -> String {
    match ci {
        Some((lo, hi)) => format!("{value} [{}, {}]", fmt(Some(*lo)), fmt(Some(*hi))),
        None => value,
    }
}

fn summary_json(s: &Summary) -> Value {
    serde_json::to_value(s).unwrap_or_default()
}

fn ends(r: &SubsetResult, c: &Context) -> Ends {
    Ends {
        cheap: r.singles[c.cheap],
        strong: r.singles[c.strong],
    }
}

fn subset_table(out: &mut String, r: &SubsetResult, c: &Context) {
    let e = ends(r, c);
    let _ = writeln!(out, "| router | APGR | CPT(50%) strong share / $ per 1k | CPT(80%) strong share / $ per 1k | AIQ | quality at best static cost | savings at 95% of strongest quality |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let ci = |k: &str| r.ci.get(k);
    for (i, (name, _, s)) in r.curves.iter().enumerate() {
        let learned = i == 0;
        let pick = |k: &str| if learned { ci(k) } else { None };
        let _ = writeln!(
            out,
            "| {name} | {} | {} / {} | {} / {} | {} | {} | {} |",
            with_ci(f3(s.apgr), pick("apgr"), f3),
            with_ci(pct(s.cpt50_share), pick("cpt50_share"), pct),
            usd(s.cpt50_cost),
            with_ci(pct(s.cpt80_share), pick("cpt80_share"), pct),
            usd(s.cpt80_cost),
            with_ci(f3(Some(s.aiq)), pick("aiq"), f3),
            with_ci(
                f3(Some(s.quality_at_best_static_cost)),
                pick("quality_at_best_static_cost"),
                f3
            ),
            with_ci(pct(s.savings_at_95), pick("savings_at_95"), pct),
        );
    }
    if let Some(m) = r.margin_vs_knn {
        let _ = writeln!(
            out,
            "| **learned − kNN** (APGR margin, paired bootstrap) | {} | | | | | |",
            with_ci(format!("{m:+.3}"), ci("apgr_margin_vs_knn"), |v| v
                .map_or("—".into(), |v| format!("{v:+.3}")))
        );
    }
    let m = &r.random_mix;
    let _ = writeln!(
        out,
        "| random mix (line cheapest–strongest) | {} | {} / {} | {} / {} | {} | {} | {} |",
        f3(m.apgr),
        pct(m.cpt50_share),
        usd(m.cpt50_cost),
        pct(m.cpt80_share),
        usd(m.cpt80_cost),
        f3(Some(m.aiq)),
        f3(Some(m.quality_at_best_static_cost)),
        pct(m.savings_at_95)
    );
    let _ = writeln!(out, "\n| single model / oracle | quality | $ per 1k prompts | PGR | strong share |\n|---|---|---|---|---|");
    for (i, p) in r.singles.iter().enumerate() {
        let _ = writeln!(
            out,
            "| always {} | {:.3} | {} | {} | {:.0}% |",
            c.names[i],
            p.quality,
            usd(Some(p.cost)),
            f3(e.pgr(p.quality)),
            p.strong_share * 100.0
        );
    }
    let o = r.oracle;
    let _ = writeln!(
        out,
        "| oracle (best model per prompt, cheapest on ties) | {:.3} | {} | {} | {:.1}% |\n",
        o.quality,
        usd(Some(o.cost)),
        f3(e.pgr(o.quality)),
        o.strong_share * 100.0
    );
}

fn cost_quality_plot(r: &SubsetResult, c: &Context) -> String {
    let xy = |ps: &[Point]| -> Vec<(f64, f64)> {
        ps.iter().map(|p| (p.cost * PER_1K, p.quality)).collect()
    };
    let e = ends(r, c);
    let mut series: Vec<Series> = r
        .curves
        .iter()
        .map(|(name, pts, _)| {
            let mut v = xy(pts);
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: name.clone(),
                points: v,
                style: Style::Line,
            }
        })
        .collect();
    series.push(Series {
        name: "random mix".into(),
        points: xy(&[e.cheap, e.strong]),
        style: Style::Dashed,
    });
    for (i, p) in r.singles.iter().enumerate() {
        series.push(Series {
            name: format!("always {}", short(&c.names[i])),
            points: xy(&[*p]),
            style: Style::Points,
        });
    }
    series.push(Series {
        name: "oracle".into(),
        points: xy(&[r.oracle]),
        style: Style::Points,
    });
    chart(
        &format!("Cost vs quality: {} ({} prompts)", r.name, r.n),
        "cost, $ per 1k prompts",
        "mean quality",
        &series,
    )
}

fn short(model: &str) -> &str {
    model.rsplit('/').next().unwrap_or(model)
}

fn traffic_plot(r: &SubsetResult, c: &Context) -> String {
    let (_, pts, _) = &r.curves[0];
    let mut order: Vec<usize> = (0..pts.len()).collect();
    order.sort_by(|&a, &b| pts[a].cost.total_cmp(&pts[b].cost));
    let series: Vec<Series> = c
        .names
        .iter()
        .enumerate()
        .map(|(m, name)| Series {
            name: short(name).to_string(),
            points: order
                .iter()
                .map(|&i| {
                    let share = if m == c.strong {
                        pts[i].strong_share
                    } else if c.names.len() == 2 {
                        1.0 - pts[i].strong_share
                    } else {
                        f64::NAN
                    };
                    (pts[i].cost * PER_1K, share)
                })
                .collect(),
            style: Style::Line,
        })
        .collect();
    chart(
        &format!("Learned router: share of traffic per model ({})", r.name),
        "cost, $ per 1k prompts (knob sweep)",
        "share of prompts",
        &series,
    )
}

fn calibration_plot(c: &Context) -> String {
    let mut series: Vec<Series> = c
        .calibration
        .iter()
        .map(|(name, bins)| Series {
            name: short(name).to_string(),
            points: bins.iter().map(|b| (b.0, b.1)).collect(),
            style: Style::Line,
        })
        .collect();
    series.push(Series {
        name: "perfect".into(),
        points: vec![(0.0, 0.0), (1.0, 1.0)],
        style: Style::Dashed,
    });
    chart(
        "Calibration: predicted vs observed good-answer rate (deciles)",
        "predicted P(good answer)",
        "observed good-answer rate",
        &series,
    )
}

/// Writes the report directory.
pub fn write(out: &Path, c: &Context) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let save = |name: &str, text: &str| {
        std::fs::write(out.join(name), text)
            .map_err(|e| format!("{}: {e}", out.join(name).display()))
    };
    let mut r = String::new();
    let pooled = &c.subsets[0];
    let _ = writeln!(r, "# Switchyard eval: router artifact `{}`\n", c.version);
    let _ = writeln!(
        r,
        "- Artifact: `{}` (encoder `{}`), trained on split column `{}`",
        c.artifact_dir.display(),
        c.encoder_id,
        c.split_col
    );
    let _ = writeln!(
        r,
        "- Data: `{}` (sha256 `{}`)",
        c.data.display(),
        c.data_sha
    );
    let _ = writeln!(r, "- Evaluated: the `{}` side of split column `{}`: **{} prompts** with an outcome for every candidate (train {} / val {} prompts).", c.partition, c.split_col, c.sizes[2], c.sizes[0], c.sizes[1]);
    let _ = writeln!(r, "- sha256 of the evaluated prompt ids (sorted, one per line): `{}`; of the train + val ids: `{}`. Evaluation refuses any prompt id that appears in two splits.", c.test_ids, c.train_val_ids);
    let _ = writeln!(r, "- Seed {} ({} bootstrap resamples of prompts for the 95% intervals). The same artifact, data and seed give byte-identical output.", c.seed, c.bootstrap);
    let _ = writeln!(r, "- Candidates: strongest `{}`, cheapest `{}`. Quality and cost are the observed outcomes of the chosen model on each prompt.", c.names[c.strong], c.names[c.cheap]);
    let _ = writeln!(r, "- Reproduce: `switchyard eval --artifact {} --data {} --split {} --seed {} --bootstrap {}`\n", c.artifact_dir.display(), c.data.display(), c.partition, c.seed, c.bootstrap);

    let _ = writeln!(r, "## Routers\n");
    let _ = writeln!(r, "- **learned**: the server's scoring (`switchyard_learn::score::rank`: `score = P(good) − w · cost / max cost`, the best eligible score wins) swept over {} knob points. Each point is the `strong_share` knob at 0, 4, …, 100%, which the server maps to a cost weight `w` through the artifact's validation calibration.", c.knobs.len());
    let _ = writeln!(r, "- **kNN (k={})**: the same embeddings; a candidate's predicted quality is its good-answer rate over the k nearest training prompts (cosine), output tokens their mean, scored by the same objective and swept the same way with its own validation calibration. k is chosen from {{5, 10, 20, 50, 100}} on validation APGR.", c.knn_k);
    let _ = writeln!(r, "- **rule (keywords or length)**: strongest model when the prompt has one of a fixed list of keywords (prove, derive, calculate, compute, solve, step by step, code, function, algorithm, explain why, how many, equation) or at least T estimated tokens, for T at the validation deciles and T = never.");
    let _ = writeln!(r, "- **random mix**: send a random share of prompts to the strongest model; its curve is the straight line between always-cheapest and always-strongest.");
    let _ = writeln!(
        r,
        "- **oracle**: the best observed model per prompt (cheapest on ties): the upper bound.\n"
    );

    let _ = writeln!(r, "## Metrics\n");
    let _ = writeln!(r, "With `Q` the mean quality and `C` the mean cost per prompt of an operating point, and `s`/`w` the strongest/cheapest single model:");
    let _ = writeln!(r, "- normalised cost `x = (C − C_w) / (C_s − C_w)`; performance gap recovered `PGR = (Q − Q_w) / (Q_s − Q_w)`.");
    let _ = writeln!(r, "- A router's curve joins its knob points in cost order, anchored at always-cheapest (0, 0) and always-strongest (1, 1) — the knob's limits. Points on a segment are reachable by mixing two knob settings.");
    let _ = writeln!(
        r,
        "- **APGR** = ∫₀¹ PGR(x) dx (trapezoids). Random mix: 0.5."
    );
    let _ = writeln!(r, "- **CPT(p)**: the first point along the curve where PGR ≥ p, as the share of prompts sent to the strongest model and as dollars per 1,000 prompts (interpolated on the segment).");
    let _ = writeln!(r, "- **AIQ** (RouterBench): ∫₀¹ Q̃(x) dx, where Q̃ is the non-decreasing upper convex hull of the curve's (x, Q) points.");
    let _ = writeln!(r, "- **Quality at best static cost**: the highest Q on the curve at x ≤ x of the single model with the highest quality.");
    let _ = writeln!(
        r,
        "- **Savings at 95%**: `1 − C / C_s` at the cheapest curve point with Q ≥ 0.95 · Q_s."
    );
    let _ = writeln!(r, "- Learned-router figures carry [2.5%, 97.5%] bootstrap intervals (prompts resampled with replacement, seeded; the knob points stay fixed).\n");

    let _ = writeln!(r, "## Pooled ({} prompts)\n", pooled.n);
    subset_table(&mut r, pooled, c);
    let _ = writeln!(
        r,
        "![cost vs quality](cost_quality_pooled.svg)\n\n![traffic share](traffic_share.svg)\n"
    );
    let _ = writeln!(r, "### Learned router sweep (pooled)\n\n| strong-share knob | cost weight | observed strong share | quality | $ per 1k | PGR |\n|---|---|---|---|---|---|");
    let e = ends(pooled, c);
    for (k, p) in c.knobs.iter().zip(&pooled.curves[0].1) {
        let _ = writeln!(
            r,
            "| {:.2} | {:.4} | {:.1}% | {:.3} | {} | {} |",
            k["strong_share_target"].as_f64().unwrap_or(0.0),
            k["cost_weight"].as_f64().unwrap_or(0.0),
            p.strong_share * 100.0,
            p.quality,
            usd(Some(p.cost)),
            f3(e.pgr(p.quality))
        );
    }
    let _ = writeln!(r, "\n### Knob presets (pooled)\n\nThe named knobs of `auto` (`auto:best`, `auto:balanced`, `auto:cheap`) at their fixed cost weights, with the default unfamiliar-prompt policy.\n\n| knob | cost weight | strong share | quality | $ per 1k | cost / always-strong | PGR |\n|---|---|---|---|---|---|---|");
    for (name, w, p) in c.presets {
        let _ = writeln!(
            r,
            "| {name} | {w} | {:.1}% | {:.3} | {} | {:.0}% | {} |",
            p.strong_share * 100.0,
            p.quality,
            usd(Some(p.cost)),
            p.cost / e.strong.cost.max(1e-12) * 100.0,
            f3(e.pgr(p.quality))
        );
    }
    for s in &c.subsets[1..] {
        let _ = writeln!(r, "\n## Benchmark `{}` ({} prompts)\n", s.name, s.n);
        subset_table(&mut r, s, c);
        let _ = writeln!(r, "![cost vs quality](cost_quality_{}.svg)", s.name);
    }
    let _ = writeln!(r, "\n## Calibration (evaluated prompts)\n\n![calibration](calibration.svg)\n\n| model | decile: mean predicted → observed good rate |\n|---|---|");
    for (name, bins) in c.calibration {
        let cells: Vec<String> = bins
            .iter()
            .map(|b| format!("{:.2}→{:.2}", b.0, b.1))
            .collect();
        let _ = writeln!(r, "| {name} | {} |", cells.join(", "));
    }
    let _ = writeln!(r, "\n## Output tokens (evaluated prompts)\n\nThe artifact predicts each candidate's output tokens from the prompt's content (ridge regression of ln(1 + tokens) on the embedding). Observed tokens: GSM8K and MT-Bench from the recorded answers (characters / 4), MMLU a fixed 2 (a letter; the source files record no answer text).\n\n| benchmark | model | prompts | median relative error | median predicted | median observed |\n|---|---|---|---|---|---|");
    for e in c.output_errors {
        let _ = writeln!(
            r,
            "| {} | {} | {} | {:.3} | {:.1} | {:.1} |",
            e.source, e.model, e.n, e.median_relative_error, e.median_predicted, e.median_observed
        );
    }
    let _ = writeln!(r, "\n## Support\n\nPrompts whose support (mean cosine similarity of the 10 nearest training prompts) is below the artifact's threshold {:.4} (the 1st percentile of validation prompts) are unfamiliar: the server's default policy sends them to the cheapest eligible candidate (the priciest at cost weight 0), and so does this evaluation. Share of evaluated prompts below it: {:.1}%.", c.support.0, c.support.1 * 100.0);
    let _ = writeln!(r, "\n## Against published numbers\n");
    let _ = writeln!(r, "RouteLLM (Ong et al., 2024) routes between the same pair (GPT-4 Turbo and Mixtral 8x7B) and reports its best router, matrix factorisation trained on Chatbot Arena preferences plus GPT-4-judge augmentation, at APGR 0.802 on MT-Bench. Their routers are trained on preference data and evaluated on whole benchmarks, while this artifact is trained on the benchmark outcomes themselves and evaluated on held-out prompts (or whole held-out subjects and categories with `split_subject`). The numbers are therefore not directly comparable, and the tables above are the claim.");
    save("report.md", &r)?;

    let subsets: serde_json::Map<String, Value> = c
        .subsets
        .iter()
        .map(|s| {
            let curves: Vec<Value> = s
                .curves
                .iter()
                .map(|(name, pts, sum)| json!({"router": name, "points": pts, "summary": summary_json(sum)}))
                .collect();
            (
                s.name.clone(),
                json!({
                    "prompts": s.n,
                    "single_models": c.names.iter().zip(&s.singles).map(|(n, p)| json!({"model": n, "point": p})).collect::<Vec<_>>(),
                    "oracle": s.oracle,
                    "random_mix": summary_json(&s.random_mix),
                    "routers": curves,
                    "learned_minus_knn_apgr": s.margin_vs_knn,
                    "learned_ci95": s.ci.iter().map(|(k, v)| (k.clone(), json!([v.0, v.1]))).collect::<serde_json::Map<_, _>>(),
                }),
            )
        })
        .collect();
    let metrics = json!({
        "artifact": {"version": c.version, "dir": c.artifact_dir.display().to_string(), "encoder": c.encoder_id, "split_column": c.split_col},
        "data": {"path": c.data.display().to_string(), "sha256": c.data_sha},
        "seed": c.seed,
        "bootstrap_resamples": c.bootstrap,
        "partition": c.partition,
        "prompts": {"train": c.sizes[0], "val": c.sizes[1], "evaluated": c.sizes[2]},
        "evaluated_prompt_ids_sha256": c.test_ids,
        "train_val_prompt_ids_sha256": c.train_val_ids,
        "candidates": c.names,
        "strongest": c.names[c.strong],
        "cheapest": c.names[c.cheap],
        "knn_k": c.knn_k,
        "learned_knobs": c.knobs,
        "presets": c.presets.iter().map(|(name, w, p)| json!({"knob": name, "cost_weight": w, "point": p})).collect::<Vec<_>>(),
        "subsets": subsets,
        "output_tokens": c.output_errors.iter().map(|e| json!({"benchmark": e.source, "model": e.model, "prompts": e.n, "median_relative_error": e.median_relative_error, "median_predicted": e.median_predicted, "median_observed": e.median_observed})).collect::<Vec<_>>(),
        "support": {"threshold": c.support.0, "unfamiliar_share": c.support.1},
        "calibration": c.calibration.iter().map(|(n, b)| json!({"model": n, "deciles": b.iter().map(|x| json!({"predicted": x.0, "observed": x.1, "n": x.2})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
    });
    save(
        "metrics.json",
        &(serde_json::to_string_pretty(&metrics).map_err(|e| e.to_string())? + "\n"),
    )?;
    for s in c.subsets {
        save(
            &format!("cost_quality_{}.svg", s.name),
            &cost_quality_plot(s, c),
        )?;
    }
    save("traffic_share.svg", &traffic_plot(pooled, c))?;
    save("calibration.svg", &calibration_plot(c))?;
    Ok(())
}
