//! Mid-stream rescue's upstream half: the rest of a chain asked to continue an answer that
//! broke after part of it reached the client.

use super::failover::{chat_attempt, run_chain, Execution, Guards};
use super::provider::{Call, Provider};
use crate::format::request::ChatRequest;
use crate::route::RoutePlan;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// What a model without prefill is asked after the answer so far, to continue it.
pub const CONTINUE: &str = "Continue your previous message exactly where it stops. Do not repeat any of it and do not comment on it.";

/// Continues a stream that broke after `sent` reached the client, on the models of `plan`
/// (the rest of its chain): each gets the request with the answer so far as an assistant
/// message, which a model with `prefill` continues; others get the instruction [`CONTINUE`]
/// after it. A prefill refused with a 4xx is sent once more without it, so a wrong `prefill`
/// setting never reaches the client as a 400.
pub async fn continue_stream(
    providers: &HashMap<String, Arc<dyn Provider>>,
    plan: &RoutePlan,
    req: &ChatRequest,
    sent: &str,
    guards: &Guards<'_>,
) -> Execution {
    let with = |prefill: bool| -> Arc<Map<String, Value>> {
        let mut body = req.body.clone();
        if let Some(Value::Array(m)) = body.get_mut("messages") {
            m.push(json!({"role": "assistant", "content": sent}));
            if !prefill {
                m.push(json!({"role": "user", "content": CONTINUE}));
            }
        }
        Arc::new(body)
    };
    let (prefilled, instructed) = (with(true), with(false));
    run_chain(providers, plan, guards, |provider, model, limits| {
        let call = |body: &Arc<Map<String, Value>>| Call {
            model: model.clone(),
            body: body.clone(),
            stream: true,
            max_body_bytes: guards.max_upstream_body_bytes,
            native: None,
        };
        let first = provider.send(call(if model.prefill {
            &prefilled
        } else {
            &instructed
        }));
        let again = model.prefill.then(|| provider.send(call(&instructed)));
        async move {
            match (chat_attempt(first, plan, guards, true, limits).await, again) {
                (Err(e), Some(again))
                    if e.status
                        .is_some_and(|s| (400..500).contains(&s) && s != 429) =>
                {
                    chat_attempt(again, plan, guards, true, limits).await
                }
                (r, _) => r,
            }
        }
    })
    .await
}
