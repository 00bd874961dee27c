//! `[routers.*]`: ordered CEL routes, weighted variants, fallbacks, and `auto` as a route's
//! target (checked against `[auto]`).

use super::auto::{cost_weight, AutoConfig};
use super::duration::parse_opt_duration;
use super::models::{find_model, ModelConfig};
use super::source::{ConfigError, Source};
use crate::cel::CelExpr;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRouter {
    timeout: Option<String>,
    ttft_timeout: Option<String>,
    retries: Option<u32>,
    #[serde(default)]
    hedge: bool,
    #[serde(default)]
    routes: Vec<FileRoute>,
    default: FileRoute,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRoute {
    name: Option<String>,
    when: Option<String>,
    model: Option<String>,
    #[serde(default)]
    variants: Vec<FileVariant>,
    #[serde(default)]
    fallbacks: Vec<String>,
    /// Learned routing as this route's target: `auto = { candidates = [...], knob = "cheap" }`.
    auto: Option<FileRouteAuto>,
    /// Order the route's models by a live estimate before failing over in that order.
    sort: Option<SortBy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRouteAuto {
    /// Served model ids among `[auto].candidates`; empty = all of them.
    #[serde(default)]
    candidates: Vec<String>,
    knob: Option<String>,
    /// A specific artifact (`models/router-<version>`) instead of `[auto] artifact`: a staged
    /// rollout puts it on a variant.
    artifact: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileVariant {
    model: Option<String>,
    auto: Option<FileRouteAuto>,
    weight: u32,
    name: Option<String>,
}

/// What a route sorts its models by (ascending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    Ttft,
    Latency,
    Price,
    ErrorRate,
}

#[derive(Debug)]
pub struct RouterConfig {
    pub name: String,
    pub timeout: Duration,
    pub ttft_timeout: Duration,
    /// Same-model retries of this router's requests (None: `server.retries`).
    pub retries: Option<u32>,
    /// Streaming requests start the next model too when the first is slow to its first token.
    pub hedge: bool,
    pub routes: Vec<RouteConfig>,
    pub default: RouteConfig,
}

#[derive(Debug)]
pub struct RouteConfig {
    pub name: String,
    pub when: Option<CelExpr>,
    /// Static targets; empty when the route's target is learned routing (`auto`).
    pub variants: Vec<VariantConfig>,
    pub fallbacks: Vec<Arc<ModelConfig>>,
    pub auto: Option<Arc<RouteAuto>>,
    /// `sort = "ttft" | "latency" | "price" | "error_rate"`: the chain ordered by it (ascending).
    pub sort: Option<SortBy>,
}

/// Learned routing as a route's (or variant's) target: a subset of the `[auto]` candidates, a
/// default knob, and optionally an artifact of its own.
#[derive(Debug)]
pub struct RouteAuto {
    /// Served model ids; empty = every `[auto]` candidate.
    pub candidates: Vec<String>,
    pub knob: String,
    pub cost_weight: f64,
    /// `None`: the `[auto]` artifact (hot-reloaded); else this one, pinned.
    pub artifact: Option<PathBuf>,
}

/// What a variant serves: a model, or learned routing (e.g. a new artifact on a share of users).
#[derive(Debug)]
pub enum VariantTarget {
    Model(Arc<ModelConfig>),
    Auto(Arc<RouteAuto>),
}

#[derive(Debug)]
pub struct VariantConfig {
    pub name: String,
    pub target: VariantTarget,
    pub weight: u32,
}

/// Finds a model by id for a config key.
type ModelLookup<'a> = dyn Fn(&str, &str) -> Result<Arc<ModelConfig>, ConfigError> + 'a;

/// Validates `[routers.*]`; a router's timeouts default to the server's.
pub(super) fn routers(
    raw: &BTreeMap<String, FileRouter>,
    models: &[Arc<ModelConfig>],
    timeouts: (Duration, Duration),
    src: &Source,
) -> Result<BTreeMap<String, Arc<RouterConfig>>, ConfigError> {
    let err = |key: &str, reason: String| src.err(key, reason);
    let find_model = |key: &str, id: &str| find_model(models, key, id, src);
    let mut routers = BTreeMap::new();
    for (name, r) in raw {
        let key = format!("routers.{name}");
        let timeout =
            parse_opt_duration(&r.timeout, &format!("{key}.timeout"), &err)?.unwrap_or(timeouts.0);
        let ttft_timeout =
            parse_opt_duration(&r.ttft_timeout, &format!("{key}.ttft_timeout"), &err)?
                .unwrap_or(timeouts.1);
        if r.retries.is_some_and(|n| n > 5) {
            return Err(err(
                &format!("{key}.retries"),
                "at most 5 same-model retries".into(),
            ));
        }
        let mut routes = Vec::new();
        for (i, route) in r.routes.iter().enumerate() {
            let rkey = format!("{key}.routes[{i}]");
            if route.when.is_none() {
                return Err(err(
                    &format!("{rkey}.when"),
                    "a route needs a `when` condition (use `default` for the catch-all)".into(),
                ));
            }
            routes.push(build_route(route, &rkey, i, &find_model, &err)?);
        }
        let default = build_route(
            &r.default,
            &format!("{key}.default"),
            usize::MAX,
            &find_model,
            &err,
        )?;
        routers.insert(
            name.clone(),
            Arc::new(RouterConfig {
                name: name.clone(),
                timeout,
                ttft_timeout,
                retries: r.retries,
                hedge: r.hedge,
                routes,
                default,
            }),
        );
    }

    Ok(routers)
}

/// Checks every route whose target is `auto` against `[auto]`.
pub(super) fn check_auto_routes(
    routers: &BTreeMap<String, Arc<RouterConfig>>,
    auto: Option<&AutoConfig>,
    src: &Source,
) -> Result<(), ConfigError> {
    let err = |key: &str, reason: String| src.err(key, reason);
    for (rname, r) in routers {
        let routes = r
            .routes
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("routers.{rname}.routes[{i}]"), x));
        for (route_key, route) in routes.chain([(format!("routers.{rname}.default"), &r.default)]) {
            let variant_autos =
                route
                    .variants
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| match &v.target {
                        VariantTarget::Auto(ra) => Some((format!("{route_key}.variants[{i}]"), ra)),
                        VariantTarget::Model(_) => None,
                    });
            let autos: Vec<(String, &Arc<RouteAuto>)> = route
                .auto
                .iter()
                .map(|ra| (route_key.clone(), ra))
                .chain(variant_autos)
                .collect();
            for (key, ra) in autos {
                let Some(a) = auto else {
                    return Err(err(
                        &format!("{key}.auto"),
                        "learned routing needs an [auto] section (artifact, encoder, candidates)"
                            .into(),
                    ));
                };
                for m in &ra.candidates {
                    if !a.candidates.iter().any(|c| &c.id == m) {
                        return Err(err(
                            &format!("{key}.auto.candidates"),
                            format!(
                                "{m:?} is not an [auto] candidate (those are: {})",
                                a.candidates
                                    .iter()
                                    .map(|c| c.id.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }

    Ok(())
}

/// Every artifact a route or variant pins (staged rollouts), once each.
pub fn pinned_artifacts(routers: &BTreeMap<String, Arc<RouterConfig>>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for r in routers.values() {
        for route in r.routes.iter().chain([&r.default]) {
            let variant_autos = route.variants.iter().filter_map(|v| match &v.target {
                VariantTarget::Auto(ra) => Some(ra),
                VariantTarget::Model(_) => None,
            });
            for ra in route.auto.iter().chain(variant_autos) {
                if let Some(p) = &ra.artifact {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
            }
        }
    }
    out
}

/// Learned routing as a target: candidates among `[auto]`'s (checked later), knob, artifact.
fn route_auto(
    a: &FileRouteAuto,
    key: &str,
    find_model: &ModelLookup,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Arc<RouteAuto>, ConfigError> {
    let knob = a.knob.clone().unwrap_or_else(|| "balanced".into());
    let cost_weight = cost_weight(&knob).ok_or_else(|| {
        err(
            &format!("{key}.knob"),
            format!("{knob:?} is not best, balanced, cheap or a number between 0 and 1"),
        )
    })?;
    let candidates = a
        .candidates
        .iter()
        .enumerate()
        .map(|(i, m)| find_model(&format!("{key}.candidates[{i}]"), m).map(|m| m.id.clone()))
        .collect::<Result<_, _>>()?;
    if a.artifact.as_deref().is_some_and(|p| p.trim().is_empty()) {
        return Err(err(&format!("{key}.artifact"), "is empty".into()));
    }
    Ok(Arc::new(RouteAuto {
        candidates,
        knob,
        cost_weight,
        artifact: a.artifact.as_ref().map(PathBuf::from),
    }))
}

fn build_route(
    route: &FileRoute,
    key: &str,
    index: usize,
    find_model: &ModelLookup,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<RouteConfig, ConfigError> {
    let name = route.name.clone().unwrap_or_else(|| {
        if index == usize::MAX {
            "default".to_string()
        } else {
            format!("route-{index}")
        }
    });
    let when = match &route.when {
        Some(src) => {
            Some(CelExpr::compile(src).map_err(|e| err(&format!("{key}.when"), e.to_string()))?)
        }
        None => None,
    };
    let auto = match &route.auto {
        None => None,
        Some(a) => {
            if route.model.is_some() || !route.variants.is_empty() {
                return Err(err(key, "give one of `model`, `variants` or `auto`".into()));
            }
            Some(route_auto(a, &format!("{key}.auto"), find_model, err)?)
        }
    };
    let variants = match (&route.model, route.variants.is_empty()) {
        _ if auto.is_some() => vec![],
        (Some(_), false) => {
            return Err(err(
                key,
                "give either `model` or `variants`, not both".into(),
            ))
        }
        (None, true) => {
            return Err(err(
                key,
                "a route needs `model`, `variants` or `auto`".into(),
            ))
        }
        (Some(m), true) => vec![VariantConfig {
            name: m.clone(),
            target: VariantTarget::Model(find_model(&format!("{key}.model"), m)?),
            weight: 100,
        }],
        (None, false) => {
            let total: u32 = route.variants.iter().map(|v| v.weight).sum();
            if total != 100 {
                return Err(err(
                    &format!("{key}.variants"),
                    format!("variant weights sum to {total}, not 100"),
                ));
            }
            let mut out = Vec::new();
            for (i, v) in route.variants.iter().enumerate() {
                let vkey = format!("{key}.variants[{i}]");
                let (target, default_name) = match (&v.model, &v.auto) {
                    (Some(m), None) => (
                        VariantTarget::Model(find_model(&format!("{vkey}.model"), m)?),
                        m.clone(),
                    ),
                    (None, Some(a)) => {
                        let ra = route_auto(a, &format!("{vkey}.auto"), find_model, err)?;
                        let name = ra
                            .artifact
                            .as_ref()
                            .map_or("auto".to_string(), |p| format!("auto@{}", p.display()));
                        (VariantTarget::Auto(ra), name)
                    }
                    _ => return Err(err(&vkey, "a variant has one of `model` or `auto`".into())),
                };
                out.push(VariantConfig {
                    name: v.name.clone().unwrap_or(default_name),
                    target,
                    weight: v.weight,
                });
            }
            out
        }
    };
    let fallbacks = route
        .fallbacks
        .iter()
        .enumerate()
        .map(|(i, m)| find_model(&format!("{key}.fallbacks[{i}]"), m))
        .collect::<Result<_, _>>()?;
    Ok(RouteConfig {
        name,
        when,
        variants,
        fallbacks,
        auto,
        sort: route.sort,
    })
}
