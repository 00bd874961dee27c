//! Planning a request: the static routing table, then — for `model: "auto"` or a router route
//! that targets `auto` — the learned step, on a bounded blocking pool. The result is the
//! [`RoutePlan`]: the fallback chain and the decision that explains it.

use super::learned::{AutoRouter, AutoSlot};
use super::{append_unique, Decision, RoutePlan, RoutingTable};
use crate::config::{cost_weight, ModelConfig, RouteAuto, SortBy};
use crate::error::{ErrorKind, GatewayError};
use crate::format::request::ChatRequest;
use crate::live::LiveStats;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use switchyard_learn::schema::LearnedDecision;
use switchyard_learn::score::cost_weight_for_share;
use tokio::sync::Semaphore;

/// Plans requests for one config.
pub struct Planner {
    pub table: RoutingTable,
    /// Learned routing (hot-reloadable), or why `auto` is unavailable.
    pub auto: AutoSlot,
    /// Artifacts pinned by router routes or variants (staged rollouts), by path.
    pub pinned: HashMap<PathBuf, AutoSlot>,
    /// Bounds concurrent routing decisions (each holds an encoder session).
    permits: Semaphore,
    /// Live estimates that routes with `sort` order their chains by.
    live: Arc<LiveStats>,
}

/// Where a learned decision comes from: `model: "auto[:knob]"`, or a router route whose
/// target is `auto`.
enum AutoSource<'a> {
    Model(&'a str),
    Route(&'a RouteAuto),
}

impl Planner {
    pub fn new(
        table: RoutingTable,
        auto: AutoSlot,
        pinned: HashMap<PathBuf, AutoSlot>,
        decision_slots: usize,
        live: Arc<LiveStats>,
    ) -> Planner {
        Planner {
            table,
            auto,
            pinned,
            permits: Semaphore::new(decision_slots),
            live,
        }
    }

    /// The plan for a request: learned for `auto`, else the static table's (completed by the
    /// learned step when its route targets `auto`).
    pub async fn plan(
        &self,
        req: &ChatRequest,
        request_id: &str,
    ) -> Result<RoutePlan, GatewayError> {
        match req.model.as_deref() {
            Some(m) if m == "auto" || m.starts_with("auto:") => {
                self.auto_plan(req, m, request_id).await
            }
            _ => {
                let plan = self.table.plan(req, request_id)?;
                let mut plan = self.complete_route_plan(req, plan).await?;
                if let Some(by) = plan.sort {
                    // The reason shows the values the order was made from.
                    let values = self.live.sort(&mut plan.chain, by);
                    let order: Vec<String> = plan
                        .chain
                        .iter()
                        .zip(values)
                        .map(|(m, v)| {
                            let v = v.map_or_else(
                                || "not measured".to_string(),
                                |v| match by {
                                    SortBy::Ttft | SortBy::Latency => format!("{v} ms"),
                                    SortBy::ErrorRate => format!("{v:.3}"),
                                    SortBy::Price => format!("${v}/Mtok"),
                                },
                            );
                            format!("{} ({v})", m.id)
                        })
                        .collect();
                    plan.decision.reason.push_str(&format!(
                        "; sorted by {}: {}",
                        serde_json::to_value(by)
                            .unwrap_or_default()
                            .as_str()
                            .unwrap_or(""),
                        order.join(", ")
                    ));
                }
                Ok(plan)
            }
        }
    }

    /// The learned decision on a bounded blocking pool: the ranked eligible candidates.
    async fn learned_chain(
        &self,
        req: &ChatRequest,
        source: AutoSource<'_>,
    ) -> Result<(Vec<Arc<ModelConfig>>, LearnedDecision), GatewayError> {
        let slot = match source {
            AutoSource::Route(RouteAuto {
                artifact: Some(p), ..
            }) => self.pinned.get(p).unwrap_or(&self.auto),
            _ => &self.auto,
        };
        let router = slot.get().map_err(|why| {
            GatewayError::new(
                ErrorKind::AutoUnavailable,
                format!("model \"auto\" (learned routing) is unavailable: {why}"),
            )
            .with_param("model")
        })?;
        let (label, weight, only) = match source {
            AutoSource::Model(model) => {
                let default = ("default".to_string(), router.default_cost_weight);
                let (l, w) = knob(&router, req, model.strip_prefix("auto:"), default)?;
                (l, w, Vec::new())
            }
            AutoSource::Route(ra) => {
                let (l, w) = knob(&router, req, None, (ra.knob.clone(), ra.cost_weight))?;
                (l, w, ra.candidates.clone())
            }
        };
        // Budget pacing: a key spending ahead of its budget's time raises the cost weight.
        let pacing = req.pacing.clone().map(|mut p| {
            p.cost_weight_before = weight;
            p
        });
        let weight = pacing.as_ref().map_or(weight, |p| p.paced(weight));
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()))?;
        let (chain, mut decision) = if router.decides_inline(req) {
            router.decide(req, &label, weight, &only)?
        } else {
            let owned = req.clone();
            tokio::task::spawn_blocking(move || router.decide(&owned, &label, weight, &only))
                .await
                .map_err(|e| {
                    GatewayError::new(ErrorKind::Internal, format!("routing decision failed: {e}"))
                })??
        };
        decision.pacing = pacing;
        Ok((chain, decision))
    }

    /// Plans an `auto` request: the learned chain, then the request's `models`.
    async fn auto_plan(
        &self,
        req: &ChatRequest,
        model: &str,
        request_id: &str,
    ) -> Result<RoutePlan, GatewayError> {
        let (mut chain, learned) = self.learned_chain(req, AutoSource::Model(model)).await?;
        append_unique(&mut chain, self.table.resolve_models(req, request_id)?);
        let (timeout, ttft_timeout) = self.table.timeouts();
        Ok(RoutePlan {
            decision: Decision {
                router: Some("auto".into()),
                route: None,
                variant: None,
                reason: format!(
                    "learned routing: {} has the best predicted quality-cost score (knob {}, cost weight {})",
                    learned.chosen, learned.knob, learned.cost_weight
                ),
                learned: Some(learned),
            },
            chain,
            auto: None,
            sort: None,
            timeout,
            ttft_timeout,
            retries: None,
            hedge: false,
        })
    }

    /// Completes a router plan whose route targets `auto`: the learned chain before the route's
    /// fallbacks.
    async fn complete_route_plan(
        &self,
        req: &ChatRequest,
        mut plan: RoutePlan,
    ) -> Result<RoutePlan, GatewayError> {
        let Some(ra) = plan.auto.take() else {
            return Ok(plan);
        };
        let (mut chain, learned) = self.learned_chain(req, AutoSource::Route(&ra)).await?;
        append_unique(&mut chain, plan.chain.drain(..));
        plan.chain = chain;
        plan.decision.reason.push_str(&format!(
            "; learned routing chose {} (knob {}, cost weight {})",
            learned.chosen, learned.knob, learned.cost_weight
        ));
        plan.decision.learned = Some(learned);
        Ok(plan)
    }
}

/// The knob for a learned decision: `router.cost_weight` / `metadata.cost_weight` (0–1), or
/// `router.strong_share` / `metadata.strong_share` (0–1, the share of prompts the strongest
/// candidate should get, through the artifact's validation calibration), else the model suffix
/// (`auto:cheap`, `auto:balanced`, `auto:best`, `auto:<0..1>`), else `default` (the `[auto]`
/// default knob, or a router route's `knob`).
fn knob(
    router: &AutoRouter,
    req: &ChatRequest,
    suffix: Option<&str>,
    default: (String, f64),
) -> Result<(String, f64), GatewayError> {
    let option = |name: &str| {
        req.router_options
            .get(name)
            .map(|v| (format!("router.{name}"), v))
            .or_else(|| {
                req.metadata
                    .get(name)
                    .map(|v| (format!("metadata.{name}"), v))
            })
    };
    let unit = |param: &str, v: &Value| {
        v.as_f64()
            .filter(|w| (0.0..=1.0).contains(w))
            .ok_or_else(|| {
                GatewayError::invalid(format!("`{param}` must be a number between 0 and 1"), param)
            })
    };
    if let Some((param, v)) = option("cost_weight") {
        let w = unit(&param, v)?;
        return Ok((format!("cost_weight={w}"), w));
    }
    if let Some((param, v)) = option("strong_share") {
        let share = unit(&param, v)?;
        let table = router.calibration.as_deref().ok_or_else(|| {
            GatewayError::invalid(
                format!("`{param}` needs an artifact with a strong-share calibration; retrain with `switchyard train`"),
                &param,
            )
        })?;
        return Ok((
            format!("strong_share={share}"),
            cost_weight_for_share(table, share),
        ));
    }
    match suffix {
        None => Ok(default),
        Some(k) => cost_weight(k).map(|w| (k.to_string(), w)).ok_or_else(|| {
            GatewayError::invalid(format!("unknown knob \"auto:{k}\": use auto:best, auto:balanced, auto:cheap or auto:<0..1>"), "model")
        }),
    }
}
