//! What a virtual key allows, applied after the body is read: the models and routers it may
//! use (403 otherwise), its metadata merged into the request (its values win, so CEL routes can
//! trust `team` or `plan`), and — once the plan names the chain — its rate limits and
//! budgets checked in Redis with the request's worst case reserved (429 with `Retry-After`;
//! 503 when Redis is unreachable and the key fails closed). Router keys of the config and
//! requests without a key pass unchanged.

use super::auth::Key;
use super::state::AppState;
use crate::error::{ErrorKind, GatewayError};
use crate::format::request::ChatRequest;
use crate::route::RoutePlan;
use crate::store::limits::{Refusal, Reservation};

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

/// What a limit check reserves for a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reserve {
    /// A chat request: its prompt and, for the answer, `max_tokens` (or, without it, the
    /// model's `max_output_tokens`) at the priciest model of the chain that may serve it.
    Chat,
    /// An embeddings request: its input at the priciest model of the chain.
    Embeddings,
    /// Check only (`/v1/route`: nothing is sent upstream): the request is counted, nothing
    /// is reserved.
    Nothing,
}

/// Checks and counts the key's limits for a planned request and reserves its worst case
/// (settled with the real tokens and cost when it ends), so that concurrent requests cannot
/// together spend past a budget.
/// The caller's budget pacing ([`crate::store::limits::Limits::pacing`]): read before planning
/// so that `auto` steps down to cheaper candidates before a budget refuses requests.
pub async fn pacing(state: &AppState, key: &Key) -> Option<switchyard_learn::schema::Pacing> {
    let (Some(vk), Some(limits)) = (
        &key.virtual_key,
        state.store.as_ref().and_then(|s| s.limits.as_ref()),
    ) else {
        return None;
    };
    limits.pacing(vk).await
}

pub async fn limit(
    state: &AppState,
    key: &Key,
    req: &ChatRequest,
    plan: &RoutePlan,
    reserve: Reserve,
) -> Result<Option<Reservation>, GatewayError> {
    let (Some(vk), Some(limits)) = (
        &key.virtual_key,
        state.store.as_ref().and_then(|s| s.limits.as_ref()),
    ) else {
        return Ok(None);
    };
    let asked = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| req.body.get(*k).and_then(|v| v.as_u64()));
    let (tokens, cost) = plan
        .chain
        .iter()
        .map(|m| {
            let out = match reserve {
                Reserve::Embeddings => 0,
                _ => asked.unwrap_or(m.max_output_tokens),
            };
            (req.prompt_tokens + out, m.cost_usd(req.prompt_tokens, out))
        })
        .fold((0, 0.0f64), |(t, c), (t2, c2)| (t.max(t2), c.max(c2)));
    match limits
        .admit(vk, tokens, cost, reserve != Reserve::Nothing)
        .await
    {
        Ok(r) => Ok(r),
        Err(Refusal::Limit { what, retry_after }) => {
            let hint = if asked.is_none() && reserve == Reserve::Chat && what.contains("budget") {
                format!(" (this request reserves up to ${cost:.6}, its worst case without `max_tokens`; a smaller `max_tokens` may fit)")
            } else {
                String::new()
            };
            Err(GatewayError::new(
                ErrorKind::RateLimited,
                format!(
                    "key {} has reached its {what} limit{hint}; retry in {retry_after} s",
                    vk.id
                ),
            )
            .with_retry_after(retry_after))
        }
        Err(Refusal::Unavailable(why)) => Err(GatewayError::new(ErrorKind::Overloaded, why)),
    }
}
