//! A chat request executed on its plan: the chain of models tried in order ([`super::failover`]),
//! or, when the router asks for TTFT hedging (`hedge = true`, streaming), a second model started
//! when the first is slow to its first token, the first to answer serving.

use super::cooldown::Gate;
use super::failover::{
    attempt_of, chat_attempt, failed_attempt, limits_from_now, report, run_chain, served_attempt,
    ttft_limit, ChainResult, Execution, Guards, Limits, Served,
};
use super::provider::{Call, Provider};
use crate::clock::millis_since;
use crate::config::ModelConfig;
use crate::error::UpstreamError;
use crate::format::request::ChatRequest;
use crate::route::RoutePlan;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use switchyard_learn::schema::{AttemptRecord, Hedge};

/// Tries each model of the plan in order, skipping models in cooldown (unless nothing else is
/// left) and stopping at the request's deadline: a chat completion, streamed or whole.
/// `native` is a Responses API request as sent, for upstreams that serve it themselves.
pub async fn execute(
    providers: &HashMap<String, Arc<dyn Provider>>,
    plan: &RoutePlan,
    req: &ChatRequest,
    native: Option<Arc<Map<String, Value>>>,
    guards: &Guards<'_>,
) -> Execution {
    let body: Arc<Map<String, Value>> = Arc::new(req.body.clone());
    let attempt = |provider: &Arc<dyn Provider>, model: &Arc<ModelConfig>, limits: Limits| {
        let call = Call {
            model: model.clone(),
            body: body.clone(),
            stream: req.stream,
            max_body_bytes: guards.max_upstream_body_bytes,
            native: native.clone(),
        };
        chat_attempt(provider.send(call), plan, guards, req.stream, limits)
    };
    if plan.hedge && req.stream {
        if let Some(out) = hedged(providers, plan, guards, req.prompt_tokens, attempt).await {
            return out;
        }
    }
    run_chain(providers, plan, guards, attempt).await
}

/// Without live first-token times, hedging waits this share of the first-token limit.
const HEDGE_UNMEASURED_SHARE: u32 = 2;

/// TTFT hedging (a router's `hedge = true`, streaming): when the chain's first model has not
/// sent its first token within its live p95 TTFT (without one, half its first-token limit),
/// the next model starts too. The first to send a first token serves; the other is cancelled
/// (its attempt says `hedge: "cancelled"`, with the cost its prompt is estimated to have
/// incurred). When both fail, the rest of the chain goes on as usual. `None` when hedging does
/// not apply: fewer than two models, or the first cooling down.
pub(super) async fn hedged<F, Fut>(
    providers: &HashMap<String, Arc<dyn Provider>>,
    plan: &RoutePlan,
    guards: &Guards<'_>,
    prompt_tokens: u64,
    attempt: F,
) -> Option<Execution>
where
    F: Fn(&Arc<dyn Provider>, &Arc<ModelConfig>, Limits) -> Fut + Copy,
    Fut: std::future::Future<Output = Result<Served, UpstreamError>>,
{
    let mut usable = plan
        .chain
        .iter()
        .enumerate()
        .filter_map(|(i, m)| providers.get(&m.provider).map(|p| (i, p, m)));
    let ((_, pa, a), (ib, pb, b)) = (usable.next()?, usable.next()?);
    if guards.cooldowns.gate(&a.id) != Gate::Pass {
        return None;
    }
    let request_deadline = guards.deadline.map(|d| tokio::time::Instant::now() + d);
    let first_limit = ttft_limit(plan, guards, true);
    let after = guards
        .live
        .estimate(&a.id)
        .ttft_p95_ms
        .map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0))
        .unwrap_or(first_limit / HEDGE_UNMEASURED_SHARE);
    let (la, mut attempts) = (
        limits_from_now(plan, first_limit, request_deadline),
        Vec::new(),
    );
    let fa = attempt(pa, a, la);
    tokio::pin!(fa);
    let early = tokio::select! {
        r = &mut fa => Some(r),
        _ = tokio::time::sleep(after) => None,
    };
    let record = |model: &Arc<ModelConfig>, limits: &Limits, r: &Result<Served, UpstreamError>| {
        let elapsed = millis_since(limits.started);
        report(guards, model, r);
        match r {
            Ok(_) => served_attempt(model, elapsed, 0),
            Err(e) => failed_attempt(model, e, elapsed, 0),
        }
    };
    let mut rest_from = ib;
    match early {
        // Decided before the hedge was due: a plain first attempt.
        Some(r) => {
            attempts.push(record(a, &la, &r));
            if let Ok(served) = r {
                return Some(ChainResult {
                    attempts,
                    result: Ok((a.clone(), served)),
                });
            }
        }
        None => {
            guards.metrics.hedges.fetch_add(1, Ordering::Relaxed);
            let lb = limits_from_now(plan, ttft_limit(plan, guards, false), request_deadline);
            let fb = attempt(pb, b, lb);
            tokio::pin!(fb);
            let (mut a_open, mut b_open) = (true, true);
            while a_open || b_open {
                let (model, other, limits, other_limits, r) = tokio::select! {
                    r = &mut fa, if a_open => { a_open = false; (a, b, &la, &lb, r) }
                    r = &mut fb, if b_open => { b_open = false; (b, a, &lb, &la, r) }
                };
                let mut rec = record(model, limits, &r);
                match r {
                    Ok(served) => {
                        rec.hedge = Some(Hedge::Won);
                        let cancelled = AttemptRecord {
                            hedge: Some(Hedge::Cancelled),
                            error: Some(format!(
                                "cancelled: the hedged request to {} sent its first token first",
                                model.id
                            )),
                            cost_usd: Some(other.cost_usd(prompt_tokens, 0)),
                            duration_ms: millis_since(other_limits.started),
                            ..attempt_of(other)
                        };
                        if a_open || b_open {
                            attempts.push(cancelled);
                        }
                        attempts.push(rec);
                        return Some(ChainResult {
                            attempts,
                            result: Ok((model.clone(), served)),
                        });
                    }
                    Err(_) => attempts.push(rec),
                }
            }
            rest_from = ib + 1;
        }
    }
    // Both failed (or the first failed early): the rest of the chain as usual.
    let rest = RoutePlan {
        chain: plan.chain[rest_from..].to_vec(),
        ..plan.clone()
    };
    let mut out = run_chain(providers, &rest, guards, attempt).await;
    attempts.append(&mut out.attempts);
    out.attempts = attempts;
    Some(out)
}
