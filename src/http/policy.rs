//! What a virtual key allows, applied after the body is read: the models and routers it may
//! use (403 otherwise), its metadata merged into the request (its values win, so CEL routes can
//! trust `team` or `plan`), and — once the plan names the first model — its rate limits and
//! budgets checked in Redis (429 with `Retry-After`; 503 when Redis is unreachable and the key
//! fails closed). Router keys of the config and requests without a key pass unchanged.

use super::auth::Key;
use super::state::AppState;
use crate::error::{ErrorKind, GatewayError};
use crate::format::request::ChatRequest;
use crate::route::RoutePlan;
use crate::store::limits::Refusal;

/// Refuses models the key may not use and merges its metadata into the request.
pub fn allow(key: &Key, req: &mut ChatRequest) -> Result<(), GatewayError> {
    let Some(vk) = &key.virtual_key else {
        return Ok(());
    };
    if !vk.models.is_empty() {
        for asked in req.model.iter().chain(req.models.iter()) {
            let bare = asked.trim_start_matches("router/");
            let allowed = vk
                .models
                .iter()
                .any(|m| m == asked || m.trim_start_matches("router/") == bare);
            if !allowed {
                return Err(GatewayError::new(
                    ErrorKind::Forbidden,
                    format!(
                        "key {} may not use {asked:?}; it may use {}",
                        vk.id,
                        vk.models.join(", ")
                    ),
                )
                .with_param("model"));
            }
        }
    }
    for (k, v) in &vk.metadata {
        req.metadata.insert(k.clone(), v.clone());
    }
    Ok(())
}

/// Checks and counts the key's limits for a planned request (estimated tokens: the prompt
/// plus `max_tokens`; estimated cost at the first model's prices).
pub async fn limit(
    state: &AppState,
    key: &Key,
    req: &ChatRequest,
    plan: &RoutePlan,
) -> Result<(), GatewayError> {
    let (Some(vk), Some(limits)) = (
        &key.virtual_key,
        state.store.as_ref().and_then(|s| s.limits.as_ref()),
    ) else {
        return Ok(());
    };
    let out = ["max_tokens", "max_completion_tokens"]
        .iter()
        .find_map(|k| req.body.get(*k).and_then(|v| v.as_u64()))
        .unwrap_or(0);
    let cost = plan
        .chain
        .first()
        .map_or(0.0, |m| m.cost_usd(req.prompt_tokens, out));
    match limits.admit(vk, req.prompt_tokens + out, cost).await {
        Ok(()) => Ok(()),
        Err(Refusal::Limit { what, retry_after }) => Err(GatewayError::new(
            ErrorKind::RateLimited,
            format!(
                "key {} has reached its {what} limit; retry in {retry_after} s",
                vk.id
            ),
        )
        .with_retry_after(retry_after)),
        Err(Refusal::Unavailable(why)) => Err(GatewayError::new(ErrorKind::Overloaded, why)),
    }
}
