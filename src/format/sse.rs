//! Server-sent events: parsing an upstream's byte stream into `data:` payloads, and writing
//! events for a client.

use crate::error::{FailureKind, UpstreamError};
use bytes::{Buf, BytesMut};
use futures_util::stream::{BoxStream, StreamExt};

/// One SSE event: its `event:` name (if any) and joined `data:` lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

/// Upstream stream chunks that were not valid JSON and were skipped (process-wide, shown in
/// `/metrics`).
pub static MALFORMED_SKIPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The largest event an upstream may send; a longer one ends the stream (bounded memory).
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Splits a byte stream into events. A transport error ends the stream with `StreamBroken`.
pub fn events(
    body: BoxStream<'static, Result<bytes::Bytes, reqwest::Error>>,
) -> BoxStream<'static, Result<Event, UpstreamError>> {
    struct State {
        body: BoxStream<'static, Result<bytes::Bytes, reqwest::Error>>,
        buf: BytesMut,
        done: bool,
    }
    let state = State {
        body,
        buf: BytesMut::new(),
        done: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(ev) = take_event(&mut st.buf) {
                return Some((Ok(ev), st));
            }
            if st.done {
                return None;
            }
            if st.buf.len() > MAX_EVENT_BYTES {
                st.done = true;
                st.buf.clear();
                return Some((
                    Err(UpstreamError::new(
                        FailureKind::Malformed,
                        format!("upstream sent an event over {MAX_EVENT_BYTES} bytes"),
                    )),
                    st,
                ));
            }
            match st.body.next().await {
                Some(Ok(bytes)) => st.buf.extend_from_slice(&bytes),
                Some(Err(e)) => {
                    st.done = true;
                    st.buf.clear();
                    return Some((
                        Err(UpstreamError::new(
                            FailureKind::StreamBroken,
                            format!("upstream connection broke mid-stream: {e}"),
                        )),
                        st,
                    ));
                }
                None => {
                    st.done = true;
                    // A final event without its blank line still counts.
                    if !st.buf.is_empty() {
                        st.buf.extend_from_slice(b"\n\n");
                    }
                }
            }
        }
    })
    .boxed()
}

/// Takes one complete event (ending in a blank line) off the front of the buffer.
pub fn take_event(buf: &mut BytesMut) -> Option<Event> {
    loop {
        let text = buf.as_ref();
        let end = find_blank_line(text)?;
        let (block_len, sep_len) = end;
        let block = String::from_utf8_lossy(&text[..block_len]).into_owned();
        buf.advance(block_len + sep_len);
        let mut event = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            } else if let Some(v) = line.strip_prefix("event:") {
                event = Some(v.trim().to_string());
            }
        }
        if !data.is_empty() {
            return Some(Event {
                event,
                data: data.join("\n"),
            });
        }
        // Comments and keep-alives: keep looking.
    }
}

fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            if b.get(i + 1) == Some(&b'\n') {
                return Some((i, 2));
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

/// Appends a `data:` event holding `v` as JSON.
pub fn write_data(out: &mut Vec<u8>, v: &serde_json::Value) {
    out.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut *out, v);
    out.extend_from_slice(b"\n\n");
}

/// Appends a named event (`event: name`) holding `v` as JSON.
pub fn write_event(out: &mut Vec<u8>, name: &str, v: &serde_json::Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\n");
    write_data(out, v);
}

/// The OpenAI stream terminator.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_chunks_and_skips_comments() {
        let mut buf = BytesMut::from(&b": ping\n\nevent: x\ndata: {\"a\":1}\n\ndata: [DO"[..]);
        assert_eq!(
            take_event(&mut buf),
            Some(Event {
                event: Some("x".into()),
                data: "{\"a\":1}".into()
            })
        );
        assert_eq!(take_event(&mut buf), None);
        buf.extend_from_slice(b"NE]\r\n\r\n");
        assert_eq!(take_event(&mut buf).unwrap().data, "[DONE]");
    }
}
