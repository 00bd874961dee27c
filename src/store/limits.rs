//! Rate limits and budgets of virtual keys, shared by every replica through Redis. Admission is
//! one Lua script (atomic: checks every limit, then counts the request), so replicas never
//! read a counter and write it back; tokens and cost are charged when the response completes.
//! Windows are fixed: the UTC minute for requests and tokens, the UTC day and month for
//! budgets. When Redis cannot be reached the key's `on_redis_error` decides (admit or
//! refuse), and each such decision is counted.

use super::keys::VirtualKey;
use crate::config::store::FailMode;
use std::sync::atomic::{AtomicU64, Ordering};

/// Checks every limit, then counts the request. Returns `{0}` when admitted, or `{n}` with n
/// = 1 requests per minute, 2 tokens per minute, 3 daily budget, 4 monthly budget.
const ADMIT: &str = r#"
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local day, month, cost = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local function used(k) return tonumber(redis.call('GET', k) or '0') end
if rpm >= 0 and used(KEYS[1]) + 1 > rpm then return {1} end
if tpm >= 0 and used(KEYS[2]) + tokens > tpm then return {2} end
if day >= 0 and used(KEYS[3]) + cost > day then return {3} end
if month >= 0 and used(KEYS[4]) + cost > month then return {4} end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 120)
return {0}
"#;

/// Charges what a finished request used.
const CHARGE: &str = r#"
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 120)
redis.call('INCRBYFLOAT', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], 172800)
redis.call('INCRBYFLOAT', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], 2764800)
return 1
"#;

/// Why a request was refused, and when to come back (seconds).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Limit {
        what: &'static str,
        retry_after: u64,
    },
    /// Redis could not be reached and the key fails closed.
    Unavailable(String),
}

/// The Redis side of the limits.
pub struct Limits {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    default_mode: FailMode,
    admit: redis::Script,
    charge: redis::Script,
    /// Decisions made without Redis: admitted (fail open) and refused (fail closed).
    pub redis_errors_admitted: AtomicU64,
    pub redis_errors_refused: AtomicU64,
}

/// The counters' windows at `now_ms`: (minute, day, month) labels and seconds to each end.
fn windows(now_ms: u64) -> ((u64, u64), (String, u64), (String, u64)) {
    let secs = now_ms / 1000;
    let minute = (secs / 60, 60 - secs % 60);
    let stamp = crate::clock::rfc3339_millis(now_ms);
    let day = (stamp[..10].to_string(), 86_400 - secs % 86_400);
    // Seconds to the first of next month (UTC).
    let (y, m): (i32, u32) = (
        stamp[..4].parse().unwrap_or(1970),
        stamp[5..7].parse().unwrap_or(1),
    );
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let next = days_from_civil(ny, nm, 1) as u64 * 86_400;
    let month = (stamp[..7].to_string(), next.saturating_sub(secs).max(1));
    (minute, day, month)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Limits {
    pub async fn connect(
        url: &str,
        prefix: &str,
        default_mode: FailMode,
    ) -> Result<Limits, String> {
        let client = redis::Client::open(url).map_err(|e| format!("Redis: {e}"))?;
        let conn = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(|e| format!("Redis: {e}"))?;
        Ok(Limits {
            conn,
            prefix: prefix.to_string(),
            default_mode,
            admit: redis::Script::new(ADMIT),
            charge: redis::Script::new(CHARGE),
            redis_errors_admitted: AtomicU64::new(0),
            redis_errors_refused: AtomicU64::new(0),
        })
    }

    fn key(&self, kind: &str, id: &str, window: &str) -> String {
        format!("{}{kind}:{id}:{window}", self.prefix)
    }

    /// Admits a request of `key` expected to use `tokens` and cost `cost_usd`, counting it.
    pub async fn admit(&self, key: &VirtualKey, tokens: u64, cost_usd: f64) -> Result<(), Refusal> {
        if key.rpm.is_none()
            && key.tpm.is_none()
            && key.budget_day_usd.is_none()
            && key.budget_month_usd.is_none()
        {
            return Ok(());
        }
        let ((minute, to_minute), (day, to_day), (month, to_month)) =
            windows(crate::clock::unix_millis());
        let limit = |v: Option<i64>| v.unwrap_or(-1);
        let usd = |v: Option<f64>| v.unwrap_or(-1.0);
        let mut conn = self.conn.clone();
        let result: Result<Vec<i64>, redis::RedisError> = self
            .admit
            .key(self.key("rpm", &key.id, &minute.to_string()))
            .key(self.key("tpm", &key.id, &minute.to_string()))
            .key(self.key("usd", &key.id, &day))
            .key(self.key("usd", &key.id, &month))
            .arg(limit(key.rpm))
            .arg(limit(key.tpm))
            .arg(tokens)
            .arg(usd(key.budget_day_usd))
            .arg(usd(key.budget_month_usd))
            .arg(cost_usd)
            .invoke_async(&mut conn)
            .await;
        match result {
            Ok(v) => match v.first().copied().unwrap_or(0) {
                0 => Ok(()),
                1 => Err(Refusal::Limit {
                    what: "requests per minute",
                    retry_after: to_minute,
                }),
                2 => Err(Refusal::Limit {
                    what: "tokens per minute",
                    retry_after: to_minute,
                }),
                3 => Err(Refusal::Limit {
                    what: "daily budget",
                    retry_after: to_day,
                }),
                _ => Err(Refusal::Limit {
                    what: "monthly budget",
                    retry_after: to_month,
                }),
            },
            Err(e) => match key.on_redis_error.unwrap_or(self.default_mode) {
                FailMode::Open => {
                    self.redis_errors_admitted.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "Redis unreachable, key {} admitted (fails open): {e}",
                        key.id
                    );
                    Ok(())
                }
                FailMode::Closed => {
                    self.redis_errors_refused.fetch_add(1, Ordering::Relaxed);
                    Err(Refusal::Unavailable(format!(
                        "limits cannot be checked (Redis unreachable) and key {} fails closed",
                        key.id
                    )))
                }
            },
        }
    }

    /// Charges a finished request's tokens and cost to its key.
    pub async fn charge(&self, key_id: &str, tokens: u64, cost_usd: f64) {
        let ((minute, _), (day, _), (month, _)) = windows(crate::clock::unix_millis());
        let mut conn = self.conn.clone();
        let result: Result<i64, redis::RedisError> = self
            .charge
            .key(self.key("tpm", key_id, &minute.to_string()))
            .key(self.key("usd", key_id, &day))
            .key(self.key("usd", key_id, &month))
            .arg(tokens)
            .arg(cost_usd)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = result {
            self.redis_errors_admitted.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("could not charge key {key_id} (Redis unreachable): {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_at_the_minute_day_and_month() {
        // 2026-12-31T23:59:30Z
        let t =
            days_from_civil(2026, 12, 31) as u64 * 86_400_000 + (23 * 3600 + 59 * 60 + 30) * 1000;
        let ((_, m), (day, d), (month, mo)) = windows(t);
        assert_eq!((m, d, mo), (30, 30, 30));
        assert_eq!((day.as_str(), month.as_str()), ("2026-12-31", "2026-12"));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
