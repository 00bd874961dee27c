//! Human durations in config values: `"800ms"`, `"30s"`, `"2m"`, `"1.5h"`.

use super::source::ConfigError;
use std::time::Duration;

/// Why a duration value is not one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration like \"800ms\", \"30s\" or \"2m\"")]
    NotANumber(String),
    #[error("{0:?} has no known unit; use ms, s, m, h or d (e.g. \"800ms\")")]
    NoUnit(String),
    #[error("{0:?} must be greater than zero")]
    NotPositive(String),
}

pub(super) fn parse_opt_duration(
    value: &Option<String>,
    key: &str,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Option<Duration>, ConfigError> {
    value
        .as_deref()
        .map(|s| parse_duration(s).map_err(|e| err(key, e.to_string())))
        .transpose()
}

/// Parses a human duration: `"800ms"`, `"30s"`, `"2m"`, `"1.5s"`, `"6h"`, `"7d"`.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| DurationError::NotANumber(s.to_string()))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => return Err(DurationError::NoUnit(s.to_string())),
    };
    if secs <= 0.0 {
        return Err(DurationError::NotPositive(s.to_string()));
    }
    Ok(Duration::from_secs_f64(secs))
}
