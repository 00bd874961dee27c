//! The simple routers the learned one is compared with on the same prompts: kNN over the
//! training prompts' outcomes on the same embeddings (k chosen on validation), and a keyword
//! rule. (Random mix and single models are points on the cost axis, in [`super::subset`].)

use super::subset::summarize_curve;
use super::*;

/// Neighbour counts tried for the kNN baseline (chosen on validation APGR).
const KNN_KS: [usize; 5] = [5, 10, 20, 50, 100];

/// Words that send a prompt to the strong model in the rule-based baseline.
const RULE_KEYWORDS: [&str; 12] = [
    "prove",
    "derive",
    "calculate",
    "compute",
    "solve",
    "step by step",
    "code",
    "function",
    "algorithm",
    "explain why",
    "how many",
    "equation",
];

/// Top-`KNN_KS.max()` training neighbours (cosine) of each query, on `threads` threads.
#[allow(
    clippy::expect_used,
    reason = "KNN_KS is a non-empty constant; a panicked thread is re-raised"
)]
fn neighbours(train: &[&[f32]], queries: &[&[f32]], threads: usize) -> Vec<Vec<usize>> {
    let kmax = *KNN_KS.iter().max().expect("ks");
    let chunk = queries.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|sc| {
        let handles: Vec<_> = queries
            .chunks(chunk)
            .map(|qs| {
                sc.spawn(move || {
                    qs.iter()
                        .map(|q| {
                            let mut sims: Vec<(f32, usize)> = train
                                .iter()
                                .enumerate()
                                .map(|(j, t)| (t.iter().zip(q.iter()).map(|(a, b)| a * b).sum(), j))
                                .collect();
                            let k = kmax.min(sims.len());
                            if k < sims.len() {
                                sims.select_nth_unstable_by(k, |a, b| {
                                    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
                                });
                                sims.truncate(k);
                            }
                            sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                            sims.into_iter().map(|(_, j)| j).collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("kNN thread"))
            .collect()
    })
}

/// kNN predictions for one prompt: each candidate's good-answer rate and mean output tokens
/// over the first `k` neighbours.
fn knn_predictions(nb: &[usize], k: usize, train: &[&Prompt], names: &[String]) -> Vec<Prediction> {
    let nb = &nb[..k.min(nb.len())];
    let n = nb.len().max(1) as f64;
    names
        .iter()
        .enumerate()
        .map(|(m, name)| Prediction {
            model: name.clone(),
            quality: nb
                .iter()
                .map(|&j| f64::from(u8::from(train[j].quality[m] >= GOOD_ANSWER)))
                .sum::<f64>()
                / n,
            quality_linear: 0.0,
            quality_knn: 0.0,
            neighbours: nb.len(),
            evidence: nb.len() as f64,
            standard_error: 0.0,
            penalty: 0.0,
            output_tokens: nb.iter().map(|&j| train[j].output_tokens[m]).sum::<f64>() / n,
        })
        .collect()
}

/// The kNN router: (chosen k, curve on the evaluated prompts). Costs use the artifact's
/// reference unit, so both routers face the same objective. k is chosen on the validation
/// prompts with the training prompts as neighbours; the evaluated prompts' neighbours are the
/// training prompts, and the validation ones too when `refit` (the artifact was refitted on
/// them, so both routers know the same outcomes).
pub(super) fn knn_router<'a>(
    (train, val, eval): (&[&'a Prompt], &[&'a Prompt], &[&'a Prompt]),
    refit: bool,
    emb: &dyn Fn(&Prompt) -> &'a [f32],
    names: &[String],
    (candidates, reference): (&[Priced], f64),
    anchors: Anchors,
    threads: usize,
) -> (usize, Curve) {
    let Anchors { strong, .. } = anchors;
    let t = Instant::now();
    let train_e: Vec<&[f32]> = train.iter().map(|p| emb(p)).collect();
    let nb_val = neighbours(
        &train_e,
        &val.iter().map(|p| emb(p)).collect::<Vec<_>>(),
        threads,
    );
    let known: Vec<&Prompt> = if refit {
        train.iter().chain(val).copied().collect()
    } else {
        train.to_vec()
    };
    let nb_eval = neighbours(
        &known.iter().map(|p| emb(p)).collect::<Vec<_>>(),
        &eval.iter().map(|p| emb(p)).collect::<Vec<_>>(),
        threads,
    );
    eprintln!("kNN neighbours in {:.1}s", t.elapsed().as_secs_f64());
    let targets = share_targets();
    let strong_name = &names[strong];
    // For one k: the calibration table from validation, then the choices on `set`, whose
    // neighbours `nb` index into `among`.
    let curve_for = |k: usize,
                     (set, nb, among): (&[&Prompt], &[Vec<usize>], &[&Prompt])|
     -> (Vec<f64>, Vec<Vec<usize>>) {
        let preds = |nbs: &[Vec<usize>], among: &[&Prompt]| -> Vec<Vec<Prediction>> {
            nbs.iter()
                .map(|n| knn_predictions(n, k, among, names))
                .collect()
        };
        let table = validation_table(
            &preds(&nb_val, train),
            val,
            (candidates, reference),
            strong_name,
        );
        let weights: Vec<f64> = targets
            .iter()
            .map(|s| cost_weight_for_share(&table, *s))
            .collect();
        let choices = sweep(
            &preds(nb, among),
            set,
            &vec![false; set.len()],
            (candidates, reference),
            &weights,
            names,
        );
        (weights, choices)
    };
    let all_val: Vec<usize> = (0..val.len()).collect();
    let mut best: Option<(f64, usize)> = None;
    for &k in KNN_KS.iter().filter(|&&k| k <= train.len()) {
        let (_, choices) = curve_for(k, (val, &nb_val, train));
        let c = Curve {
            name: String::new(),
            knobs: vec![],
            choices,
        };
        let ones = vec![1.0; val.len()];
        let (_, s, _) = summarize_curve(&c, &all_val, (val, &ones), names.len(), anchors);
        let apgr = s.apgr.unwrap_or(f64::MIN);
        eprintln!("kNN k={k}: validation APGR {apgr:.4}");
        if best.is_none_or(|b| apgr > b.0) {
            best = Some((apgr, k));
        }
    }
    let k = best.map(|b| b.1).unwrap_or(1);
    let (weights, choices) = curve_for(k, (eval, &nb_eval, &known));
    let knobs = targets
        .iter()
        .zip(&weights)
        .map(|(s, w)| json!({"strong_share_target": s, "cost_weight": w}))
        .collect();
    (
        k,
        Curve {
            name: format!("kNN (k={k})"),
            knobs,
            choices,
        },
    )
}

/// Estimated prompt tokens as the server computes them.
fn prompt_tokens(p: &Prompt) -> u64 {
    single_turn_tokens(&p.prompt)
}

fn has_keyword(p: &Prompt) -> bool {
    let lower = p.prompt.to_lowercase();
    RULE_KEYWORDS.iter().any(|k| lower.contains(k))
}

/// The rule-based router: strong when the prompt has a keyword or at least `T` tokens, for `T`
/// at validation deciles (and never by length).
pub(super) fn rule_router(val: &[&Prompt], eval: &[&Prompt], anchors: Anchors) -> Curve {
    let Anchors { cheap, strong } = anchors;
    let mut lengths: Vec<f64> = val.iter().map(|p| prompt_tokens(p) as f64).collect();
    lengths.sort_by(f64::total_cmp);
    let mut thresholds: Vec<f64> = (0..=10)
        .map(|i| switchyard_learn::score::quantile(&lengths, i as f64 / 10.0).ceil())
        .collect();
    thresholds.push(f64::INFINITY);
    let info: Vec<(bool, f64)> = eval
        .iter()
        .map(|p| (has_keyword(p), prompt_tokens(p) as f64))
        .collect();
    Curve {
        name: "rule (keywords or length)".into(),
        knobs: thresholds
            .iter()
            .map(|t| json!({"min_tokens": if t.is_finite() { json!(t) } else { json!("never") }}))
            .collect(),
        choices: thresholds
            .iter()
            .map(|t| {
                info.iter()
                    .map(|(kw, len)| if *kw || len >= t { strong } else { cheap })
                    .collect()
            })
            .collect(),
    }
}
