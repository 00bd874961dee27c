//! Which rows an analytics query reads: the [`Filter`] a request asks for (a window, equality
//! filters, the caller's tenant scope) and its resolution against the table's symbols.

use super::index::{Index, Row, Sym};
use crate::store::scope::Scope;
use std::collections::HashMap;

/// Which rows a query reads: a time window and optional equality filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub from_ms: u64,
    pub to_ms: u64,
    pub model: Option<String>,
    pub router: Option<String>,
    pub route: Option<String>,
    pub variant: Option<String>,
    pub key: Option<String>,
    pub user: Option<String>,
    pub endpoint: Option<String>,
    /// Whose requests the caller may see (set by the server from the key, never a parameter).
    pub scope: Scope,
}

/// The query parameters every analytics endpoint accepts.
pub const PARAMS: [&str; 11] = [
    "window", "from", "to", "model", "router", "route", "variant", "key", "user", "endpoint",
    "limit",
];

impl Filter {
    /// Reads `window` (`15m`, `1h`, `24h`, `7d`, `all`; default `24h`) or `from` / `to` (Unix
    /// milliseconds) and the equality filters; an unknown parameter or a bad value is an error
    /// that names it: `(parameter, message)`.
    pub fn parse(
        params: &HashMap<String, String>,
        now_ms: u64,
    ) -> Result<Filter, (String, String)> {
        if let Some(bad) = params.keys().find(|k| !PARAMS.contains(&k.as_str())) {
            return Err((
                bad.clone(),
                format!(
                    "unknown query parameter `{bad}`; analytics accepts {}",
                    PARAMS.join(", ")
                ),
            ));
        }
        let ms = |name: &'static str| -> Result<Option<u64>, (String, String)> {
            params
                .get(name)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        (
                            name.to_string(),
                            format!("`{name}` must be Unix milliseconds, got {v:?}"),
                        )
                    })
                })
                .transpose()
        };
        let window = params.get("window").map_or("24h", String::as_str);
        let span = if window == "all" {
            now_ms
        } else {
            crate::config::duration::parse_duration(window)
                .map_err(|_| {
                    (
                        "window".to_string(),
                        format!("`window` must be a duration such as 15m, 1h, 7d or `all`, got {window:?}"),
                    )
                })?
                .as_millis() as u64
        };
        let to_ms = ms("to")?.unwrap_or(u64::MAX);
        let from_ms = ms("from")?.unwrap_or_else(|| now_ms.saturating_sub(span));
        if from_ms > to_ms {
            return Err(("from".into(), "`from` is after `to`".into()));
        }
        let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
        Ok(Filter {
            from_ms,
            to_ms,
            model: get("model"),
            router: get("router"),
            route: get("route"),
            variant: get("variant"),
            key: get("key"),
            user: get("user"),
            endpoint: get("endpoint"),
            scope: Scope::All,
        })
    }

    /// Everything ever logged.
    pub fn all() -> Filter {
        Filter {
            to_ms: u64::MAX,
            ..Filter::default()
        }
    }

    /// The same filter, limited to what `scope` may see.
    pub fn within(self, scope: Scope) -> Filter {
        Filter { scope, ..self }
    }
}

/// Reads one filterable field of a row.
type Field = fn(&Row) -> Sym;

/// A filter with its strings resolved to symbols (a value never seen matches nothing).
pub(super) struct Matcher {
    from_ms: u64,
    to_ms: u64,
    dims: Vec<(Field, Sym)>,
}

/// A symbol no row has: what a filter value never seen resolves to.
pub(super) const NOWHERE: Sym = Sym::MAX;

impl Matcher {
    pub(super) fn new(ix: &Index, f: &Filter) -> Matcher {
        let wanted: [(&Option<String>, Field); 7] = [
            (&f.model, |r| r.model),
            (&f.router, |r| r.router),
            (&f.route, |r| r.route),
            (&f.variant, |r| r.variant),
            (&f.key, |r| r.key),
            (&f.user, |r| r.user),
            (&f.endpoint, |r| r.endpoint),
        ];
        let sym = |v: &str| ix.syms.get(v).unwrap_or(NOWHERE);
        let mut dims: Vec<(Field, Sym)> = wanted
            .into_iter()
            .filter_map(|(v, get)| v.as_deref().map(|v| (get, sym(v))))
            .collect();
        match &f.scope {
            Scope::All => {}
            Scope::Team(t) => dims.push((|r| r.team, sym(t))),
            Scope::Key(k) => dims.push((|r| r.key, sym(k))),
        }
        Matcher {
            from_ms: f.from_ms,
            to_ms: f.to_ms,
            dims,
        }
    }

    pub(super) fn matches(&self, r: &Row) -> bool {
        r.ts_ms >= self.from_ms
            && r.ts_ms <= self.to_ms
            && self.dims.iter().all(|(get, want)| get(r) == *want)
    }
}

pub(super) fn rows<'a>(ix: &'a Index, f: &Filter) -> impl Iterator<Item = &'a Row> {
    let m = Matcher::new(ix, f);
    ix.rows.iter().filter(move |r| m.matches(r))
}
