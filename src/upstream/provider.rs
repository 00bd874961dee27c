//! The contract every provider implements: a [`Call`] in the canonical OpenAI shape goes in, a
//! [`Reply`] (whole completion or chunk stream) or an [`UpstreamError`] comes out; embeddings
//! go in and come out in OpenAI's embeddings shape.

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
    /// A Responses API request as the client sent it (without Switchyard's fields): a provider
    /// that serves `/responses` itself sends this and answers in the Responses shape (a
    /// `response` object, or its typed events as the stream items); others use `body`.
    pub native: Option<Arc<Map<String, Value>>>,
}

/// An upstream provider.
pub trait Provider: Send + Sync {
    /// Sends the call. Errors before the response starts are returned here; errors inside a
    /// stream arrive as the stream's last item.
    fn send(&self, call: Call) -> BoxFuture<'static, Result<Reply, UpstreamError>>;

    /// Embeddings: `call.body` is an OpenAI embeddings body; the answer is OpenAI's shape.
    /// Providers without embeddings answer 501 (the embeddings endpoint leaves them out of
    /// its chains before that can happen).
    fn embed(&self, call: Call) -> BoxFuture<'static, Result<Value, UpstreamError>> {
        let model = call.model.id.clone();
        Box::pin(async move {
            Err(UpstreamError::status(
                501,
                format!("{model}'s provider offers no embeddings"),
            ))
        })
    }
}
