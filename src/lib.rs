//! Switchyard: an OpenAI- and Anthropic-compatible LLM gateway with CEL routing, sticky A/B
//! variants, failover with attempt chains, request logs and metrics.

pub mod accept;
pub mod admission;
pub mod anthropic;
pub mod auto;
pub mod config;
pub mod cooldown;
pub mod encoder;
pub mod error;
pub mod feedback;
pub mod gateway;
pub mod logstore;
pub mod metrics;
pub mod mock_script;
pub mod mock_upstream;
pub mod predictor;
pub mod providers;
pub mod relay;
pub mod request;
pub mod routing;
pub mod server;
pub mod util;
