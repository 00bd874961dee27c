//! `[logging]`: the request log's directory, text policy, buffering and rotation.

use serde::Deserialize;
use std::path::PathBuf;

/// How many of the most recent served requests accept feedback by default.
pub const DEFAULT_FEEDBACK_WINDOW: usize = 200_000;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLogging {
    dir: Option<String>,
    log_text: Option<bool>,
    buffer: Option<usize>,
    rotate_bytes: Option<u64>,
    max_text_bytes: Option<usize>,
    feedback_window: Option<usize>,
    analytics_rows: Option<usize>,
    enabled: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct LoggingConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    pub log_text: bool,
    pub buffer: usize,
    pub rotate_bytes: u64,
    /// Prompt text and answer text kept per log record (each); longer text is cut with a
    /// marker. Inline media in prompts is never logged (its type and size are).
    pub max_text_bytes: usize,
    /// How many of the most recent served requests accept feedback.
    pub feedback_window: usize,
    /// Requests the analytics table keeps in memory (the newest; about 150 bytes each).
    pub analytics_rows: usize,
}

impl FileLogging {
    /// The section with its defaults (every value is valid as given).
    pub(super) fn build(self) -> LoggingConfig {
        let raw = self;
        LoggingConfig {
            enabled: raw.enabled.unwrap_or(true),
            dir: PathBuf::from(raw.dir.unwrap_or_else(|| "logs".into())),
            log_text: raw.log_text.unwrap_or(true),
            buffer: raw.buffer.unwrap_or(16_384).max(1),
            rotate_bytes: raw.rotate_bytes.unwrap_or(64 * 1024 * 1024),
            max_text_bytes: raw.max_text_bytes.unwrap_or(64 * 1024),
            feedback_window: raw
                .feedback_window
                .unwrap_or(DEFAULT_FEEDBACK_WINDOW)
                .max(1),
            analytics_rows: raw.analytics_rows.unwrap_or(1_000_000).max(1),
        }
    }
}
