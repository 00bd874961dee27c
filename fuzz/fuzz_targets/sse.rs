//! The upstream SSE parser: arbitrary bytes, delivered in arbitrary pieces (the first byte
//! sets the piece size), must give the same events as in one piece and never panic.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard::format::sse::take_event;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, body)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let mut whole = BytesMut::from(body);
    let mut expected = Vec::new();
    while let Some(ev) = take_event(&mut whole) {
        expected.push(ev);
    }
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for chunk in body.chunks(piece) {
        buf.extend_from_slice(chunk);
        while let Some(ev) = take_event(&mut buf) {
            got.push(ev);
        }
    }
    assert_eq!(got, expected);
});
