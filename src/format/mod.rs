//! Wire formats: the canonical request (OpenAI chat-completions shape), Anthropic Messages ↔
//! OpenAI translation in both directions, OpenAI's Responses API over chat completions, and server-sent events (reading and writing).
//! Imports only `error` and the learned core's prompt helpers; everything above may import it.

pub mod anthropic;
pub mod embeddings;
pub mod request;
pub mod responses;
pub mod sse;

/// The wire format the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFormat {
    /// `/v1/chat/completions`
    OpenAi,
    /// `/v1/messages`
    Anthropic,
    /// `/v1/responses`
    Responses,
    /// `/v1/embeddings` (OpenAI-shaped errors; never streamed)
    Embeddings,
}

impl ClientFormat {
    pub fn endpoint(self) -> &'static str {
        match self {
            ClientFormat::OpenAi => "/v1/chat/completions",
            ClientFormat::Anthropic => "/v1/messages",
            ClientFormat::Responses => "/v1/responses",
            ClientFormat::Embeddings => "/v1/embeddings",
        }
    }
}
