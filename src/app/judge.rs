//! The LLM judge worker (`[judge]`): takes sampled `auto` answers from the judge queue and asks
//! the configured model — served by Switchyard itself, with its routing and failover — to grade
//! each one. A score in [0, 1] is stored as feedback (`source = "judge"`, with the judge's model
//! and cost), exactly as a user's would be, so training and off-policy evaluation read it. It
//! never touches a client's response: the queue is bounded (full → dropped and counted), at most
//! `concurrency` judgements run at once, a failed or unparsable try is retried `retries` times,
//! and `budget_usd_per_hour` stops judging for the rest of the clock hour. Judgements still
//! queued when the server stops are lost.

use crate::clock::HourlyBudget;
use crate::config::judge::JudgeConfig;
use crate::format::request::ChatRequest;
use crate::http::state::{AppState, Reloadable};
use crate::observe::feedback::Feedback;
use crate::observe::judge::{judge_message, parse_score, JudgeJob, JudgeResult};
use crate::upstream::failover::{Execution, Served};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::task::JoinSet;

/// The longest question or answer text sent to the judge, in characters.
const MAX_TEXT_CHARS: usize = 8000;

/// Runs until the queue closes (the server's state is dropped) or the task is aborted.
pub async fn worker(live: Arc<Reloadable>) {
    let Some(mut queue) = live.get().judge.take_receiver() else {
        return;
    };
    let spend = Arc::new(HourlyBudget::default());
    let mut running = JoinSet::new();
    while let Some(job) = queue.recv().await {
        let state = live.get();
        // A reload may have removed [judge]: what is queued then is not judged.
        let Some(cfg) = state.config.judge.clone() else {
            continue;
        };
        while running.len() >= cfg.concurrency {
            running.join_next().await;
        }
        running.spawn(judge_one(state, cfg, job, spend.clone()));
    }
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_TEXT_CHARS).collect()
}

/// One call through Switchyard's own routing and failover: the answer text, the model that
/// answered, and its cost (counted as the judge's).
async fn call(
    state: &AppState,
    body: serde_json::Value,
    request_id: &str,
) -> Option<(String, String, f64)> {
    let req = ChatRequest::from_openai(body).ok()?;
    let plan = state.planner.plan(&req, request_id).await.ok()?;
    let guards = state.guards();
    let Execution { result, .. } =
        crate::upstream::execute::execute(&state.providers, &plan, &req, None, &guards).await;
    let Ok((model, Served::Complete(answer))) = result else {
        return None;
    };
    let usage = &answer["usage"];
    let cost = model.cost_usd(
        usage["prompt_tokens"].as_u64().unwrap_or(0),
        usage["completion_tokens"].as_u64().unwrap_or(0),
    );
    state.judge.add_cost(cost);
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    Some((text.to_string(), model.id.clone(), cost))
}

async fn judge_one(
    state: Arc<AppState>,
    cfg: JudgeConfig,
    job: JudgeJob,
    spend: Arc<HourlyBudget>,
) {
    let queue = &state.judge;
    let charge = |cost: f64| spend.charge(cost);
    // Pairwise: the runner-up answers the same messages first (a shadow request).
    let mut shadow = None;
    if let Some((messages, alternative)) = &job.pairwise {
        if !spend.allows(cfg.budget_usd_per_hour) {
            queue.count(JudgeResult::OverBudget);
            return;
        }
        let body =
            json!({"model": alternative, "messages": messages, "metadata": {"explore": false}});
        match call(&state, body, &format!("{}-shadow", job.request_id)).await {
            Some((text, _, cost)) => {
                charge(cost);
                shadow = Some((alternative.clone(), text));
            }
            None => {
                queue.count(JudgeResult::Failed);
                return;
            }
        }
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let other = shadow.as_ref().map(|(_, b)| clip(b));
    let user = judge_message(
        &clip(&job.question),
        &clip(&job.answer),
        other.as_deref(),
        &nonce[..12],
    );
    let mut last = JudgeResult::Failed;
    for attempt in 0..=cfg.retries {
        if attempt > 0 {
            queue.retries.fetch_add(1, Ordering::Relaxed);
        }
        if !spend.allows(cfg.budget_usd_per_hour) {
            queue.count(JudgeResult::OverBudget);
            return;
        }
        let body = json!({
            "model": cfg.model,
            "max_tokens": 16,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": cfg.rubric},
                {"role": "user", "content": user},
            ],
        });
        let Some((text, judge_model, cost)) =
            call(&state, body, &format!("{}-judge", job.request_id)).await
        else {
            last = JudgeResult::Failed;
            continue;
        };
        charge(cost);
        let Some(score) = parse_score(&text) else {
            last = JudgeResult::Unparsable;
            continue;
        };
        // Absolute: the served answer's score. Pairwise: P(served better) for the served model
        // and its complement for the runner-up, each under its own source.
        let mut records = vec![(job.model.clone(), score, "judge")];
        if let Some((alternative, _)) = &shadow {
            records = vec![
                (job.model.clone(), score, "judge-pairwise"),
                (
                    alternative.clone(),
                    1.0 - score,
                    "judge-pairwise-alternative",
                ),
            ];
        }
        for (model, score, source) in records {
            let f = Feedback {
                request_id: job.request_id.clone(),
                source: source.into(),
                score,
                thumbs: None,
                comment: Some(format!("judge {judge_model} (${cost:.6})")),
                model,
                key: None,
            };
            if let Err(e) = state.feedback.store(&f) {
                tracing::warn!(error = %e.message, "judge: could not store a judgement");
                queue.count(JudgeResult::Failed);
                return;
            }
            // In a fleet the shared store gets it too (every replica's analytics, the export).
            if let Some(pg) = state.store.as_ref().and_then(|s| s.pg.as_ref()) {
                if let Err(e) = pg.upsert_feedback(&f.row()).await {
                    tracing::warn!("judge: could not store a judgement in the shared store: {e}");
                }
            }
        }
        queue.count(JudgeResult::Judged);
        return;
    }
    queue.count(last);
}
