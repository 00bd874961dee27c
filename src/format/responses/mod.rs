//! OpenAI's Responses API (`POST /v1/responses`) served over chat-completions upstreams:
//! [`request`] translates a Responses body into the canonical chat body, [`response`] a whole
//! completion into a `response` object, [`stream`] chunks into the typed event stream.

pub mod request;
pub mod response;
pub mod stream;
