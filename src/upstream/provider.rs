//! The contract every provider implements: a [`Call`] in the canonical OpenAI shape goes in, a
//! [`Reply`] (whole completion or chunk stream) or an [`UpstreamError`] comes out.

use crate::config::ModelConfig;
use crate::error::UpstreamError;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde_json::{Map, Value};
use std::sync::Arc;

/// OpenAI chunk JSON values, or the error that ended the stream.
pub type ChunkStream = BoxStream<'static, Result<Value, UpstreamError>>;

/// What an upstream returned.
pub enum Reply {
    /// A whole chat completion (OpenAI shape).
    Complete(Value),
    /// A stream of chat completion chunks (OpenAI shape).
    Stream(ChunkStream),
}

/// One upstream call: the canonical body, the model it goes to, streaming or not.
pub struct Call {
    pub model: Arc<ModelConfig>,
    pub body: Arc<Map<String, Value>>,
    pub stream: bool,
    /// The largest whole (non-streamed) answer body read from the upstream
    /// (`server.max_upstream_body_bytes`).
    pub max_body_bytes: usize,
}

/// An upstream provider.
pub trait Provider: Send + Sync {
    /// Sends the call. Errors before the response starts are returned here; errors inside a
    /// stream arrive as the stream's last item.
    fn send(&self, call: Call) -> BoxFuture<'static, Result<Reply, UpstreamError>>;
}
