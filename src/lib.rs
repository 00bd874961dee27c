//! Switchyard: an OpenAI- and Anthropic-compatible LLM gateway with CEL routing, sticky A/B
//! variants, failover with attempt chains, request logs and metrics, and learned routing.
//!
//! The modules are the stages of the request path, each importing only those listed after it:
//!
//! `app` (start, stop, reload) → `http` (accept, admission, auth, handlers, responses, the
//! per-config state) → `observe` (log record and store, metrics, feedback) → `upstream`
//! (providers, failover, cooldowns) → `route` (static routers, sticky variants, CEL variables,
//! the learned step) → `format` (canonical request, Anthropic ↔ OpenAI, SSE) → `live` (per-model latency and error
//! estimates) → `config` →
//! `cel`, `error`, `clock` (leaves). The learned core lives in the `switchyard-learn` crate
//! (`learn/`), which imports nothing of this one. `testing` holds the scripted upstream used by
//! tests, demos and the load harness.

pub mod app;
pub mod cel;
pub mod clock;
pub mod config;
pub mod error;
pub mod format;
pub mod http;
pub mod live;
pub mod observe;
pub mod route;
pub mod store;
pub mod testing;
pub mod upstream;
