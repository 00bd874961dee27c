//! What Switchyard remembers of a request: the log record (a public type the trainer's columns
//! follow), the NDJSON log store with rotation, Prometheus metrics, and feedback joined to
//! logged requests (through [`recent`], the bounded index of the newest served requests), and the queue of answers sampled for the LLM judge. Writes happen off the
//! request path. Imports `config`, `format`, `route`,
//! `upstream` types; imported by `http` and `app`.

pub mod analytics;
pub mod feedback;
pub mod intern;
pub mod judge;
pub mod logstore;
pub mod metrics;
pub mod prompt;
pub mod recent;
pub mod record;
pub mod report;
