//! What is recorded when a request ends: one [`LogRecord`] line in the request log, one metrics
//! sample, the feedback memo (which models a request touched), and the `metadata` object the
//! client receives. The log record is a public type: its field names are the columns the
//! trainer and analytics read.

use super::feedback::{FeedbackStore, Served};
use super::judge::{JudgeJob, JudgeQueue};
use super::logstore::{clip, LogStore};
use super::metrics::{Metrics, RequestSample};
use crate::clock::{millis, millis_since, rfc3339_millis, unix_millis};
use crate::config::judge::JudgeConfig;
use crate::config::{LoggingConfig, ModelConfig};
use crate::error::GatewayError;
use crate::format::request::ChatRequest;
use crate::format::ClientFormat;
use crate::route::RoutePlan;
use crate::store::limits::Reservation;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::time::Instant;
use switchyard_learn::schema::log::Messages;
use switchyard_learn::schema::AttemptRecord;
use switchyard_learn::schema::{LogRecord, Savings, LOG_VERSION};

/// Who made a request.
#[derive(Debug, Default)]
pub struct Caller {
    /// The key's id (a virtual key's id, or a router key's `key-` and a hash prefix, never the
    /// key), when keys are set.
    pub key: Option<String>,
    /// The virtual key's team (analytics and spend show a team only its own requests).
    pub team: Option<String>,
    /// What the key's limits reserved for the request, settled when it ends.
    pub reservation: Option<Reservation>,
}

/// One request on its way through the gateway: what it asked, how it was planned, when it began.
pub struct RequestContext {
    pub request_id: String,
    pub caller: Caller,
    pub format: ClientFormat,
    pub started: Instant,
    pub started_unix_ms: u64,
    pub req: ChatRequest,
    pub plan: RoutePlan,
    /// What a Responses API answer echoes of the request (`/v1/responses` only).
    pub echo: Option<crate::format::responses::response::Echo>,
}

/// Where a finished request is recorded.
pub struct Sinks<'a> {
    pub metrics: &'a Metrics,
    pub logs: &'a LogStore,
    pub feedback: &'a FeedbackStore,
    pub live: &'a crate::live::LiveStats,
    /// The shared store: a virtual key's tokens and cost are charged to its limits.
    pub store: Option<&'a std::sync::Arc<crate::store::Store>>,
    pub logging: &'a LoggingConfig,
    /// The judge's queue and, when `[judge]` is configured, its settings.
    pub judge: &'a JudgeQueue,
    pub judge_config: Option<&'a JudgeConfig>,
}

/// How a request ended.
pub struct Ending<'a> {
    pub status: u16,
    pub model: Option<&'a ModelConfig>,
    pub attempts: &'a [AttemptRecord],
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The answer as kept for the log (while streaming, only its head).
    pub completion_text: Option<&'a str>,
    /// The whole answer's size in bytes.
    pub completion_bytes: usize,
    pub error: Option<&'a str>,
    pub stream_interrupted: bool,
    /// A stream finished by another model after it broke: where, from which model, by which.
    pub rescue: Option<&'a Value>,
}

/// The log's `error` for a failed request when `logging.log_text = false`.
const WITHHELD_ERROR: &str =
    "upstream text withheld (logging.log_text = false); see each attempt's status and error_kind";

/// Milliseconds spent inside Switchyard so far: elapsed time minus time spent on upstreams.
pub fn overhead_ms(started: Instant, attempts: &[AttemptRecord]) -> f64 {
    let upstream: f64 = attempts.iter().map(|a| a.duration_ms).sum();
    ((millis_since(started) - upstream).max(0.0) * 1000.0).round() / 1000.0
}

/// The times and cost of a finished request.
struct Totals {
    duration: f64,
    overhead: f64,
    cost: f64,
    ttft: Option<f64>,
    savings: Option<Savings>,
}

impl Totals {
    fn of(ctx: &RequestContext, o: &Ending) -> Totals {
        // The serving attempt is the last one; a stream that broke after its first token still
        // served (its attempt is marked failed).
        let ttft = o
            .model
            .and(o.attempts.split_last())
            .and_then(|(serving, before)| {
                serving.time_to_first_token_ms.map(|t| {
                    // TTFT as the client sees it: everything before the serving attempt's first token.
                    before.iter().map(|a| a.duration_ms).sum::<f64>() + t
                })
            });
        let cost = o
            .model
            .map(|m| m.cost_usd(o.prompt_tokens, o.completion_tokens))
            .unwrap_or(0.0);
        let savings = ctx
            .plan
            .decision
            .learned
            .as_ref()
            .filter(|_| o.model.is_some())
            .and_then(|l| Savings::of(l, (o.prompt_tokens, o.completion_tokens), cost));
        Totals {
            savings,
            duration: millis_since(ctx.started),
            overhead: overhead_ms(ctx.started, o.attempts),
            cost,
            ttft,
        }
    }
}

/// Records a finished request (metrics, feedback memo, log line); returns its `metadata`.
pub fn finish(sinks: &Sinks, ctx: &RequestContext, o: Ending) -> Value {
    let t = Totals::of(ctx, &o);
    sinks.metrics.record(&sample(ctx, &o, &t));
    charge(sinks, ctx, &o, &t);
    for a in o.attempts.iter().filter(|a| a.skipped.is_none()) {
        let ttft = a.time_to_first_token_ms.unwrap_or(a.duration_ms);
        sinks.live.record(&a.model, a.success, ttft, a.duration_ms);
    }
    if let Some(m) = o.model {
        let mut models = vec![m.id.clone()];
        models.extend(
            o.attempts
                .iter()
                .filter(|a| a.model != m.id)
                .map(|a| a.model.clone()),
        );
        sinks.feedback.remember(
            &ctx.request_id,
            Served {
                models,
                key: ctx.caller.key.clone(),
            },
        );
        // A sample of served `auto` answers goes to the judge, off the request path.
        if let (Some(judge), Some(learned), Some(answer)) = (
            sinks.judge_config,
            ctx.plan.decision.learned.as_ref(),
            o.completion_text.filter(|_| o.status == 200),
        ) {
            if sinks.judge.sampled(judge.sample_rate) {
                sinks.judge.offer(JudgeJob {
                    request_id: ctx.request_id.clone(),
                    model: m.id.clone(),
                    question: switchyard_learn::prompt::prompt_text(ctx.req.messages()),
                    answer: answer.to_string(),
                    pairwise: judge
                        .pairwise
                        .then(|| {
                            learned
                                .candidates
                                .iter()
                                .find(|c| c.eligible && c.model != m.id)
                                .map(|c| (ctx.req.body["messages"].clone(), c.model.clone()))
                        })
                        .flatten(),
                });
            }
        }
    }
    write_log(sinks, ctx, &o, &t);
    let mut meta = json!({
        "request_id": ctx.request_id,
        "model": o.model.map(|m| m.id.as_str()),
        "provider": o.model.map(|m| m.provider.as_str()),
        "routing": ctx.plan.decision,
        "attempts": o.attempts,
        "time_to_first_token_ms": t.ttft,
        "total_duration_ms": t.duration,
        "overhead_ms": t.overhead,
        "cost_usd": t.cost,
        "usage": {"prompt_tokens": o.prompt_tokens, "completion_tokens": o.completion_tokens},
    });
    if let Some(s) = &t.savings {
        meta["savings"] = json!(s);
    }
    if let Some(r) = o.rescue {
        meta["rescue"] = r.clone();
    }
    meta
}

fn sample<'a>(ctx: &'a RequestContext, o: &'a Ending, t: &Totals) -> RequestSample<'a> {
    RequestSample {
        endpoint: ctx.format.endpoint(),
        status: o.status,
        attempts: o
            .attempts
            .iter()
            .filter(|a| a.skipped.is_none())
            .map(|a| (a.model.as_str(), a.success))
            .collect(),
        served_model: o.model.map(|m| m.id.as_str()),
        duration_secs: t.duration / 1000.0,
        ttft_secs: t.ttft.map(|t| t / 1000.0),
        overhead_secs: t.overhead / 1000.0,
        prompt_tokens: o.prompt_tokens,
        completion_tokens: o.completion_tokens,
        cost_usd: t.cost,
        stream_interrupted: o.stream_interrupted,
        baseline: t.savings.as_ref().map(|s| {
            (
                ctx.plan.decision.router.as_deref().unwrap_or("auto"),
                s.baseline_cost_usd,
            )
        }),
    }
}

/// The log line. Without text logging, an upstream's own words (which may quote the prompt)
/// stay out of the log too: each attempt keeps its kind and status.
fn write_log(sinks: &Sinks, ctx: &RequestContext, o: &Ending, t: &Totals) {
    let d = &ctx.plan.decision;
    let log_text = sinks.logging.log_text;
    let withheld: Vec<AttemptRecord>;
    let (attempts, error) = if log_text {
        (o.attempts, o.error)
    } else {
        withheld = o
            .attempts
            .iter()
            .map(AttemptRecord::without_upstream_text)
            .collect();
        (&withheld[..], o.error.map(|_| WITHHELD_ERROR))
    };
    let completion = o
        .completion_text
        .filter(|_| log_text)
        .map(|text| clip(text, o.completion_bytes, sinks.logging.max_text_bytes));
    let prompt = ctx
        .req
        .body
        .get("messages")
        .filter(|_| log_text)
        .map(|m| Messages::Written(super::prompt::logged(m, sinks.logging.max_text_bytes)));
    sinks.logs.log(&LogRecord {
        version: LOG_VERSION,
        ts: rfc3339_millis(ctx.started_unix_ms).into(),
        ts_ms: ctx.started_unix_ms,
        request_id: ctx.request_id.as_str().into(),
        endpoint: ctx.format.endpoint().into(),
        status: o.status,
        key: ctx.caller.key.as_deref().map(Into::into),
        team: ctx.caller.team.as_deref().map(Into::into),
        user: ctx.req.user.as_deref().map(Into::into),
        metadata: Some(Cow::Borrowed(&ctx.req.metadata)),
        requested_model: ctx.req.model.as_deref().map(Into::into),
        router: d.router.as_deref().map(Into::into),
        route: d.route.as_deref().map(Into::into),
        variant: d.variant.as_deref().map(Into::into),
        reason: Some(d.reason.as_str().into()),
        learned: d.learned.as_ref().map(Cow::Borrowed),
        savings: t.savings.clone(),
        model: o.model.map(|m| m.id.as_str().into()),
        provider: o.model.map(|m| m.provider.as_str().into()),
        stream: ctx.req.stream,
        attempts: attempts.into(),
        ttft_ms: t.ttft,
        duration_ms: t.duration,
        overhead_ms: t.overhead,
        prompt_tokens: o.prompt_tokens,
        completion_tokens: o.completion_tokens,
        cost_usd: t.cost,
        error: error.map(Into::into),
        stream_interrupted: o.stream_interrupted,
        rescue: o.rescue.map(Cow::Borrowed),
        prompt,
        completion,
    });
}

/// Settles what a virtual key's limits reserved for the request with what it really used
/// (off the request path).
fn charge(sinks: &Sinks, ctx: &RequestContext, o: &Ending, t: &Totals) {
    let (Some(store), Some(reservation)) = (sinks.store, &ctx.caller.reservation) else {
        return;
    };
    let (reservation, tokens, cost) = (
        reservation.clone(),
        o.prompt_tokens + o.completion_tokens,
        t.cost,
    );
    let store = store.clone();
    tokio::spawn(async move {
        if let Some(limits) = &store.limits {
            limits.settle(&reservation, tokens, cost).await;
        }
    });
}

/// Records a request that failed before any upstream was tried (bad JSON, unknown model, ...).
pub fn rejected(
    sinks: &Sinks,
    request_id: &str,
    format: ClientFormat,
    started: Instant,
    caller: &Caller,
    err: &GatewayError,
) {
    let now = unix_millis();
    sinks.metrics.record(&RequestSample {
        endpoint: format.endpoint(),
        status: err.status.as_u16(),
        attempts: vec![],
        served_model: None,
        duration_secs: started.elapsed().as_secs_f64(),
        ttft_secs: None,
        overhead_secs: started.elapsed().as_secs_f64(),
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_usd: 0.0,
        stream_interrupted: false,
        baseline: None,
    });
    sinks.logs.log(&LogRecord {
        version: LOG_VERSION,
        ts: rfc3339_millis(now).into(),
        ts_ms: now,
        request_id: request_id.into(),
        endpoint: format.endpoint().into(),
        status: err.status.as_u16(),
        key: caller.key.as_deref().map(Into::into),
        team: caller.team.as_deref().map(Into::into),
        error: Some(err.message.as_str().into()),
        duration_ms: millis(started.elapsed()),
        ..LogRecord::default()
    });
}
