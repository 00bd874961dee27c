//! Routing: turns the request's `model` (a model, a router or `auto`) and `models` into an
//! ordered chain of models to try, plus the decision that explains it. Static routers and
//! their CEL conditions live here, sticky variants in [`sticky`], the CEL variables in
//! [`facts`], the learned step in [`learned`], and [`plan::Planner`] puts them together.
//! Imports `config`, `format`, `cel`, `error` and the learned core; `upstream` and above
//! import it.

pub mod facts;
pub mod learned;
pub mod plan;
pub mod sticky;

use crate::config::{
    Config, ModelConfig, RouteAuto, RouteConfig, RouterConfig, SortBy, VariantTarget,
};
use crate::error::{ErrorKind, GatewayError};
use crate::format::request::ChatRequest;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Why the chain looks the way it does.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Decision {
    pub router: Option<String>,
    pub route: Option<String>,
    pub variant: Option<String>,
    pub reason: String,
    /// Learned routing's candidates, scores and choice (`model: "auto"`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub learned: Option<switchyard_learn::schema::LearnedDecision>,
}

/// The ordered models to try and the limits for each attempt.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    pub chain: Vec<Arc<ModelConfig>>,
    pub decision: Decision,
    /// Set when the chosen route's target is learned routing: the server decides, then
    /// prepends the ranked candidates to `chain` (the route's fallbacks).
    pub auto: Option<Arc<RouteAuto>>,
    pub timeout: Duration,
    pub ttft_timeout: Duration,
    /// Same-model retries when the router sets them (else `server.retries`).
    pub retries: Option<u32>,
    /// TTFT hedging (the router's `hedge`).
    pub hedge: bool,
    /// The route's `sort`: the planner orders the chain by a live estimate.
    pub sort: Option<SortBy>,
}

/// The models and routers of a config, ready to plan requests.
pub struct RoutingTable {
    pub models: Vec<Arc<ModelConfig>>,
    pub routers: Vec<Arc<RouterConfig>>,
    timeout: Duration,
    ttft_timeout: Duration,
}

enum Target {
    Model(Arc<ModelConfig>),
    Router(Arc<RouterConfig>),
}

impl RoutingTable {
    pub fn new(config: &Config) -> RoutingTable {
        RoutingTable {
            models: config.models.clone(),
            routers: config.routers.values().cloned().collect(),
            timeout: config.server.timeout,
            ttft_timeout: config.server.ttft_timeout,
        }
    }

    /// Plans a request: the first model, its fallbacks, then the request's `models` list.
    pub fn plan(&self, req: &ChatRequest, request_id: &str) -> Result<RoutePlan, GatewayError> {
        let (first, rest) = match &req.model {
            Some(m) => (m.as_str(), &req.models[..]),
            None => (req.models[0].as_str(), &req.models[1..]),
        };
        let mut plan = match self.resolve(first, "model")? {
            Target::Model(m) => RoutePlan {
                chain: vec![m.clone()],
                decision: Decision {
                    reason: format!("model {:?} requested directly", m.id),
                    ..Decision::default()
                },
                auto: None,
                sort: None,
                timeout: self.timeout,
                ttft_timeout: self.ttft_timeout,
                retries: None,
                hedge: false,
            },
            Target::Router(r) => plan_router(&r, req, request_id),
        };
        for (i, name) in rest.iter().enumerate() {
            let extra = match self.resolve(name, &format!("models[{i}]"))? {
                Target::Model(m) => vec![m],
                Target::Router(r) => plan_router(&r, req, request_id).chain,
            };
            append_unique(&mut plan.chain, extra);
        }
        Ok(plan)
    }

    /// Resolves the request's `models` fallback list to models (routers give their chain).
    pub fn resolve_models(
        &self,
        req: &ChatRequest,
        request_id: &str,
    ) -> Result<Vec<Arc<ModelConfig>>, GatewayError> {
        let mut out: Vec<Arc<ModelConfig>> = Vec::new();
        for (i, name) in req.models.iter().enumerate() {
            let extra = match self.resolve(name, &format!("models[{i}]"))? {
                Target::Model(m) => vec![m],
                Target::Router(r) => plan_router(&r, req, request_id).chain,
            };
            append_unique(&mut out, extra);
        }
        Ok(out)
    }

    /// Server-wide timeouts (used for plans that no router defines).
    pub fn timeouts(&self) -> (Duration, Duration) {
        (self.timeout, self.ttft_timeout)
    }

    fn resolve(&self, name: &str, param: &str) -> Result<Target, GatewayError> {
        if name == "auto" || name.starts_with("auto:") {
            return Err(GatewayError::new(
                ErrorKind::AutoUnavailable,
                format!(
                    "model {name:?} asks for learned routing, which is only available as the request's \
                     `model`, not inside `models` or a router"
                ),
            )
            .with_param(param));
        }
        if let Some(router) = name.strip_prefix("router/") {
            return self
                .routers
                .iter()
                .find(|r| r.name == router)
                .map(|r| Target::Router(r.clone()))
                .ok_or_else(|| self.not_found(name, param));
        }
        if let Some(m) = self.models.iter().find(|m| m.id == name) {
            return Ok(Target::Model(m.clone()));
        }
        // A bare model name: the part after `provider/` or the upstream name, when unambiguous.
        let matches: Vec<_> = self
            .models
            .iter()
            .filter(|m| m.id.split_once('/').map(|(_, n)| n) == Some(name) || m.upstream == name)
            .collect();
        match matches.as_slice() {
            [one] => Ok(Target::Model((*one).clone())),
            [] => match self.routers.iter().find(|r| r.name == name) {
                Some(r) => Ok(Target::Router(r.clone())),
                None => Err(self.not_found(name, param)),
            },
            many => Err(GatewayError::invalid(
                format!(
                    "model {name:?} is ambiguous; say which: {}",
                    many.iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                param,
            )),
        }
    }

    fn not_found(&self, name: &str, param: &str) -> GatewayError {
        let mut known: Vec<String> = self.models.iter().map(|m| m.id.clone()).collect();
        known.extend(self.routers.iter().map(|r| format!("router/{}", r.name)));
        GatewayError::new(
            ErrorKind::ModelNotFound,
            format!(
                "the model {name:?} does not exist; available: {}",
                known.join(", ")
            ),
        )
        .with_param(param)
    }
}

/// Evaluates a router's routes in order and picks a variant of the first match.
fn plan_router(router: &RouterConfig, req: &ChatRequest, request_id: &str) -> RoutePlan {
    let vars = facts::Vars::of(req).bindings();

    let mut skipped = Vec::new();
    let mut chosen: Option<(&RouteConfig, String)> = None;
    for route in &router.routes {
        // Config validation gives every route a condition.
        let Some(when) = route.when.as_ref() else {
            continue;
        };
        match when.eval_bool(&vars) {
            Ok(true) => {
                chosen = Some((route, format!("condition {:?} matched", when.source)));
                break;
            }
            Ok(false) => {}
            Err(e) => skipped.push(e.to_string()),
        }
    }
    let (route, mut reason) = chosen.unwrap_or((
        &router.default,
        "no condition matched; default route".into(),
    ));
    if !skipped.is_empty() {
        reason.push_str(&format!(
            " (conditions not evaluable, treated as false: {})",
            skipped.join("; ")
        ));
    }
    if let Some(auto) = &route.auto {
        return RoutePlan {
            chain: route.fallbacks.clone(),
            decision: Decision {
                router: Some(router.name.clone()),
                route: Some(route.name.clone()),
                variant: None,
                reason,
                learned: None,
            },
            auto: Some(auto.clone()),
            sort: route.sort,
            timeout: router.timeout,
            ttft_timeout: router.ttft_timeout,
            retries: router.retries,
            hedge: router.hedge,
        };
    }
    let variant = if route.variants.len() == 1 {
        &route.variants[0]
    } else {
        match &req.user {
            Some(user) => {
                reason.push_str("; variant sticky by user");
                sticky::pick(
                    &route.variants,
                    &format!("{}\0{}\0{user}", router.name, route.name),
                )
            }
            None => {
                reason.push_str("; variant random (no user)");
                sticky::pick(&route.variants, request_id)
            }
        }
    };
    // A learned variant (e.g. a new artifact on a share of users) is completed by the planner.
    let (mut chain, auto) = match &variant.target {
        VariantTarget::Model(m) => (vec![m.clone()], None),
        VariantTarget::Auto(ra) => (vec![], Some(ra.clone())),
    };
    append_unique(&mut chain, route.fallbacks.iter().cloned());
    RoutePlan {
        chain,
        decision: Decision {
            router: Some(router.name.clone()),
            route: Some(route.name.clone()),
            variant: Some(variant.name.clone()),
            reason,
            learned: None,
        },
        auto,
        sort: route.sort,
        timeout: router.timeout,
        ttft_timeout: router.ttft_timeout,
        retries: router.retries,
        hedge: router.hedge,
    }
}

/// Appends models to a failover chain, skipping those already in it.
pub fn append_unique(
    chain: &mut Vec<Arc<ModelConfig>>,
    extra: impl IntoIterator<Item = Arc<ModelConfig>>,
) {
    for m in extra {
        if !chain.iter().any(|c| c.id == m.id) {
            chain.push(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFIG;
    use serde_json::{json, Value};

    fn table() -> RoutingTable {
        RoutingTable::new(&Config::parse(DEFAULT_CONFIG, "default", &|_| None).unwrap())
    }

    fn req(v: Value) -> ChatRequest {
        ChatRequest::from_openai(v).unwrap()
    }

    #[test]
    fn resolves_models_bare_names_and_routers() {
        let t = table();
        let p = t
            .plan(
                &req(json!({"model": "fast", "messages": [{"role": "user", "content": "x"}]})),
                "r",
            )
            .unwrap();
        assert_eq!(p.chain[0].id, "mock/fast");
        let p = t
            .plan(&req(json!({"model": "router/demo", "metadata": {"plan": "free"}, "messages": [{"role": "user", "content": "x"}]})), "r")
            .unwrap();
        assert_eq!(
            p.chain.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            vec!["mock/fast", "mock/smart"]
        );
        assert_eq!(p.decision.route.as_deref(), Some("free"));
        let e = t
            .plan(
                &req(json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]})),
                "r",
            )
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::ModelNotFound);
        let e = t
            .plan(
                &req(json!({"model": "fast", "models": ["auto"], "messages": [{"role": "user", "content": "x"}]})),
                "r",
            )
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::AutoUnavailable);
    }

    #[test]
    fn missing_metadata_falls_to_default_and_models_extend_chain() {
        let t = table();
        let p = t
            .plan(&req(json!({"model": "router/demo", "user": "bob", "models": ["mock/flaky"], "messages": [{"role": "user", "content": "x"}]})), "r")
            .unwrap();
        assert_eq!(p.decision.route.as_deref(), Some("default"));
        assert!(
            p.decision.reason.contains("treated as false"),
            "{}",
            p.decision.reason
        );
        assert_eq!(p.chain.last().unwrap().id, "mock/flaky");
        assert_eq!(p.chain.len(), 3);
    }
}
