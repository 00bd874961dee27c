//! Clocks and timestamps: wall-clock times for logs, durations as the milliseconds every record
//! and response reports, and spend per clock hour. A leaf: imports nothing of the crate.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// USD spent in the current clock hour, against a cap the caller passes (exploration, the LLM
/// judge): a new hour starts from zero.
#[derive(Default)]
pub struct HourlyBudget {
    /// (clock hour, USD spent in it).
    spent: Mutex<(u64, f64)>,
}

impl HourlyBudget {
    /// This hour's spend, after resetting it if the hour has changed.
    fn this_hour(&self) -> std::sync::MutexGuard<'_, (u64, f64)> {
        let hour = unix_secs() / 3600;
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        if spent.0 != hour {
            *spent = (hour, 0.0);
        }
        spent
    }

    /// Whether this hour's spend is below `cap` (always, without one).
    pub fn allows(&self, cap: Option<f64>) -> bool {
        cap.is_none_or(|c| self.this_hour().1 < c)
    }

    pub fn charge(&self, usd: f64) {
        self.this_hour().1 += usd;
    }
}

/// A duration in milliseconds, rounded to the microsecond (how every `*_ms` field is written).
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Milliseconds since `since`, rounded to the microsecond.
pub fn millis_since(since: Instant) -> f64 {
    millis(since.elapsed())
}

/// Seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 3339 UTC timestamp with milliseconds, e.g. `2026-11-24T17:51:36.123Z`.
pub fn rfc3339_millis(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_timestamps() {
        assert_eq!(super::rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339_millis(1_795_542_696_123),
            "2026-11-24T17:51:36.123Z"
        );
    }
}
