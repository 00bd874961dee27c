//! The JSON Schemas under `docs/schema/` are generated from the record types
//! (`switchyard-train schema --out docs/schema`); this fails when a type changed and the
//! checked-in schema did not, so the Python readers never read a stale shape.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

use std::path::Path;

#[test]
fn checked_in_schemas_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schema");
    for (name, schema) in switchyard_learn::schema::json_schemas() {
        let want = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir.join(name);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is not the schema of the current types; regenerate it with \
             `cargo run -p switchyard-training -- schema --out docs/schema`",
            path.display()
        );
    }
}

#[test]
fn a_written_log_record_reads_back_the_same() {
    use switchyard_learn::schema::log::Messages;
    use switchyard_learn::schema::{AttemptRecord, LogRecord, LOG_VERSION};
    let attempts = [AttemptRecord::new("m/a", "openai")];
    let prompt = serde_json::json!([{"role": "user", "content": "hi"}]);
    let written = LogRecord {
        version: LOG_VERSION,
        request_id: "r1".into(),
        endpoint: "/v1/chat/completions".into(),
        status: 200,
        model: Some("m/a".into()),
        attempts: attempts[..].into(),
        prompt: Some(Messages::Written(std::borrow::Cow::Borrowed(&prompt))),
        duration_ms: 1.5,
        ..LogRecord::default()
    };
    let line = serde_json::to_string(&written).unwrap();
    let read: LogRecord = serde_json::from_str(&line).unwrap();
    assert_eq!(serde_json::to_string(&read).unwrap(), line);
    assert_eq!(read.messages().unwrap()[0]["content"], "hi");
    assert_eq!(written.messages(), read.messages());
    // A line of an older build (no `v`) is version 1.
    let old: LogRecord = serde_json::from_str(r#"{"request_id": "x"}"#).unwrap();
    assert_eq!(old.version, 1);
}
