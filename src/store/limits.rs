//! Rate limits and budgets of virtual keys, shared by every replica through Redis. Admission is
//! one Lua script (atomic: checks every limit, then counts the request and *reserves* its
//! worst-case tokens and cost), so replicas never read a counter and write it back and
//! concurrent requests cannot all pass a check that only one of them fits. When the request
//! ends its real tokens and cost settle the reservation (the difference is added). Windows
//! are fixed: the UTC minute for requests and tokens, the UTC day and month for budgets.
//!
//! Budget counters that Redis lost (a restart without persistence) are rebuilt from the
//! spend PostgreSQL recorded before the next request is admitted. When Redis cannot be reached
//! within `[store] redis_timeout`, the key's `on_redis_error` decides (admit or refuse), and each
//! such decision is counted.

use super::keys::VirtualKey;
use super::pg::Pg;
use crate::config::store::FailMode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_learn::schema::Pacing;

/// Checks every limit, then counts the request and reserves its tokens and cost. Returns
/// `{0}` when admitted, `{n}` with n = 1 requests per minute, 2 tokens per minute, 3 daily
/// budget, 4 monthly budget, or `{5}` when a budget's counter is missing (Redis lost it: seed
/// it from the store first).
const ADMIT: &str = r#"
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local day, month, cost = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local reserve = ARGV[7] == '1'
local budgets = day >= 0 or month >= 0
if budgets and (redis.call('EXISTS', KEYS[3]) == 0 or redis.call('EXISTS', KEYS[4]) == 0) then return {5} end
local function used(k) return tonumber(redis.call('GET', k) or '0') end
if rpm >= 0 and used(KEYS[1]) + 1 > rpm then return {1} end
if tpm >= 0 and used(KEYS[2]) + tokens > tpm then return {2} end
if day >= 0 and used(KEYS[3]) + cost > day then return {3} end
if month >= 0 and used(KEYS[4]) + cost > month then return {4} end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 120)
if reserve then
  redis.call('INCRBY', KEYS[2], tokens)
  redis.call('EXPIRE', KEYS[2], 120)
  if budgets then
    redis.call('INCRBYFLOAT', KEYS[3], cost)
    redis.call('INCRBYFLOAT', KEYS[4], cost)
  end
end
return {0}
"#;

/// Settles a reservation: adds what the request really used minus what was reserved. Budget
/// counters Redis lost meanwhile are left missing (the next admission rebuilds them from the
/// store, where this request's cost is recorded).
const SETTLE: &str = r#"
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 120)
for i = 2, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBYFLOAT', KEYS[i], ARGV[2]) end
end
return 1
"#;

/// Seeds a budget counter Redis lost with the spend the store recorded.
const SEED: &str = r#"
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', 172800)
redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', 2764800)
return 1
"#;

/// What admission reserved for a request against its key's limits; settled when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub key_id: String,
    minute: u64,
    day: String,
    month: String,
    pub tokens: u64,
    pub cost_usd: f64,
}

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
    timeout: Duration,
    /// Where lost budget counters are rebuilt from.
    pg: Option<Arc<Pg>>,
    admit: redis::Script,
    settle: redis::Script,
    seed: redis::Script,
    /// Decisions made without Redis: admitted (fail open) and refused (fail closed).
    pub redis_errors_admitted: AtomicU64,
    pub redis_errors_refused: AtomicU64,
    /// Reservations that could not be settled (Redis unreachable when the request ended).
    pub settle_errors: AtomicU64,
    /// Budget counters rebuilt from the store's spend.
    pub seeded: AtomicU64,
}

/// Why a Redis call did not answer.
enum CallError {
    Redis(redis::RedisError),
    Timeout(Duration),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Redis(e) => write!(f, "{e}"),
            CallError::Timeout(d) => write!(
                f,
                "no answer within {} ms ([store] redis_timeout)",
                d.as_millis()
            ),
        }
    }
}

/// Unix seconds when the UTC day and month of `now_ms` began.
fn window_starts(now_ms: u64) -> (u64, u64) {
    let secs = now_ms / 1000;
    let (y, m) = year_month(&crate::clock::rfc3339_millis(now_ms));
    (
        secs - secs % 86_400,
        days_from_civil(y, m, 1).max(0) as u64 * 86_400,
    )
}

/// The counters' windows at `now_ms`: (minute, day, month) labels and seconds to each end.
fn windows(now_ms: u64) -> ((u64, u64), (String, u64), (String, u64)) {
    let secs = now_ms / 1000;
    let minute = (secs / 60, 60 - secs % 60);
    let stamp = crate::clock::rfc3339_millis(now_ms);
    let day = (stamp[..10].to_string(), 86_400 - secs % 86_400);
    // Seconds to the first of next month (UTC).
    let (y, m) = year_month(&stamp);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let next = days_from_civil(ny, nm, 1) as u64 * 86_400;
    let month = (stamp[..7].to_string(), next.saturating_sub(secs).max(1));
    (minute, day, month)
}

/// The year and month of an RFC 3339 time stamp.
fn year_month(stamp: &str) -> (i32, u32) {
    (
        stamp[..4].parse().unwrap_or(1970),
        stamp[5..7].parse().unwrap_or(1),
    )
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
        timeout: Duration,
        pg: Option<Arc<Pg>>,
    ) -> Result<Limits, super::StoreError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = redis::aio::ConnectionManager::new_with_config(client, config).await?;
        Ok(Limits {
            conn,
            prefix: prefix.to_string(),
            default_mode,
            timeout,
            pg,
            admit: redis::Script::new(ADMIT),
            settle: redis::Script::new(SETTLE),
            seed: redis::Script::new(SEED),
            redis_errors_admitted: AtomicU64::new(0),
            redis_errors_refused: AtomicU64::new(0),
            settle_errors: AtomicU64::new(0),
            seeded: AtomicU64::new(0),
        })
    }

    fn key(&self, kind: &str, id: &str, window: &str) -> String {
        format!("{}{kind}:{id}:{window}", self.prefix)
    }

    /// Runs a script invocation within the timeout.
    async fn call<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, CallError> {
        let mut conn = self.conn.clone();
        self.within(invocation.invoke_async(&mut conn)).await
    }

    /// A Redis command's answer, or an error once `redis_timeout` has passed.
    async fn within<T>(
        &self,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(self.timeout, command).await {
            Ok(r) => r.map_err(CallError::Redis),
            Err(_) => Err(CallError::Timeout(self.timeout)),
        }
    }

    /// Admits a request of `key` whose worst case is `tokens` and `cost_usd`: checks every
    /// limit and, when `reserve`, reserves that worst case until [`Limits::settle`]. `Ok(None)`
    /// when nothing was reserved (the key has no limits, or Redis failed open).
    pub async fn admit(
        &self,
        key: &VirtualKey,
        tokens: u64,
        cost_usd: f64,
        reserve: bool,
    ) -> Result<Option<Reservation>, Refusal> {
        if key.rpm.is_none()
            && key.tpm.is_none()
            && key.budget_day_usd.is_none()
            && key.budget_month_usd.is_none()
        {
            return Ok(None);
        }
        let now = crate::clock::unix_millis();
        let ((minute, to_minute), (day, to_day), (month, to_month)) = windows(now);
        let limit = |v: Option<i64>| v.unwrap_or(-1);
        let usd = |v: Option<f64>| v.unwrap_or(-1.0);
        let keys = [
            self.key("rpm", &key.id, &minute.to_string()),
            self.key("tpm", &key.id, &minute.to_string()),
            self.key("usd", &key.id, &day),
            self.key("usd", &key.id, &month),
        ];
        let mut invocation = self.admit.prepare_invoke();
        for k in &keys {
            invocation.key(k);
        }
        invocation
            .arg(limit(key.rpm))
            .arg(limit(key.tpm))
            .arg(tokens)
            .arg(usd(key.budget_day_usd))
            .arg(usd(key.budget_month_usd))
            .arg(cost_usd)
            .arg(if reserve { "1" } else { "0" });
        let mut result = self.call::<Vec<i64>>(&invocation).await;
        if matches!(result.as_deref(), Ok([5])) {
            result = match self.seed_budget(&key.id, &keys[2], &keys[3], now).await {
                Ok(()) => self.call::<Vec<i64>>(&invocation).await,
                Err(e) => Err(e),
            };
        }
        let refused = |what, retry_after| Err(Refusal::Limit { what, retry_after });
        match result {
            Ok(v) => match v.first().copied().unwrap_or(0) {
                0 => Ok(reserve.then(|| Reservation {
                    key_id: key.id.clone(),
                    minute,
                    day,
                    month,
                    tokens,
                    cost_usd,
                })),
                1 => refused("requests per minute", to_minute),
                2 => refused("tokens per minute", to_minute),
                3 => refused("daily budget", to_day),
                4 => refused("monthly budget", to_month),
                _ => self.without_redis(key, "a budget counter could not be rebuilt".into()),
            },
            Err(e) => self.without_redis(key, e.to_string()),
        }
    }

    /// The key's `on_redis_error` decides, and the decision is counted.
    fn without_redis(&self, key: &VirtualKey, why: String) -> Result<Option<Reservation>, Refusal> {
        match key.on_redis_error.unwrap_or(self.default_mode) {
            FailMode::Open => {
                self.redis_errors_admitted.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "Redis unreachable, key {} admitted (fails open): {why}",
                    key.id
                );
                Ok(None)
            }
            FailMode::Closed => {
                self.redis_errors_refused.fetch_add(1, Ordering::Relaxed);
                Err(Refusal::Unavailable(format!(
                    "limits cannot be checked (Redis unreachable) and key {} fails closed",
                    key.id
                )))
            }
        }
    }

    /// Rebuilds a key's lost day and month counters from the spend PostgreSQL recorded (zero
    /// without a store); a counter another replica rebuilt first is kept.
    async fn seed_budget(
        &self,
        key_id: &str,
        day_key: &str,
        month_key: &str,
        now_ms: u64,
    ) -> Result<(), CallError> {
        let (day_start, month_start) = window_starts(now_ms);
        let (day, month) = match &self.pg {
            Some(pg) => pg
                .key_spend(key_id, day_start as i64, month_start as i64)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(
                        "could not read key {key_id}'s spend to rebuild its budget counters: {e}"
                    );
                    (0.0, 0.0)
                }),
            None => (0.0, 0.0),
        };
        let mut invocation = self.seed.prepare_invoke();
        invocation.key(day_key).key(month_key).arg(day).arg(month);
        self.call::<i64>(&invocation).await?;
        self.seeded.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether Redis answers a PING within the timeout.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        self.within(cmd.query_async::<String>(&mut conn))
            .await
            .is_ok()
    }

    /// The key's spend against the time gone in its budgets' windows ([`Pacing`]), the budget
    /// furthest ahead; `None` without budgets, on pace, or when Redis does not answer (pacing
    /// is advisory: admission still decides).
    pub async fn pacing(&self, key: &VirtualKey) -> Option<Pacing> {
        let budgets = [
            ("daily", key.budget_day_usd),
            ("monthly", key.budget_month_usd),
        ];
        if budgets.iter().all(|(_, b)| b.is_none()) {
            return None;
        }
        let now = crate::clock::unix_millis();
        let (_, (day, to_day), (month, to_month)) = windows(now);
        let (day_start, month_start) = window_starts(now);
        let secs = now / 1000;
        let mut cmd = redis::cmd("MGET");
        cmd.arg(self.key("usd", &key.id, &day))
            .arg(self.key("usd", &key.id, &month));
        let mut conn = self.conn.clone();
        let spent: Vec<Option<f64>> = self.within(cmd.query_async(&mut conn)).await.ok()?;
        let elapsed = |start: u64, to_end: u64| {
            let gone = secs.saturating_sub(start) as f64;
            gone / (gone + to_end as f64).max(1.0)
        };
        let elapsed = [elapsed(day_start, to_day), elapsed(month_start, to_month)];
        budgets
            .iter()
            .zip(spent.iter().chain(std::iter::repeat(&None)))
            .zip(elapsed)
            .filter_map(|(((name, budget), spent), elapsed)| {
                let budget = budget.filter(|b| *b > 0.0)?;
                Pacing::of(name, spent.unwrap_or(0.0) / budget, elapsed)
            })
            .max_by(|a, b| a.pressure.total_cmp(&b.pressure))
    }

    /// Settles a reservation with what the request really used.
    pub async fn settle(&self, r: &Reservation, tokens: u64, cost_usd: f64) {
        let mut invocation = self.settle.prepare_invoke();
        invocation
            .key(self.key("tpm", &r.key_id, &r.minute.to_string()))
            .key(self.key("usd", &r.key_id, &r.day))
            .key(self.key("usd", &r.key_id, &r.month))
            .arg(tokens as i64 - r.tokens as i64)
            .arg(cost_usd - r.cost_usd);
        if let Err(e) = self.call::<i64>(&invocation).await {
            self.settle_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("could not settle key {}'s reservation: {e}", r.key_id);
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
        let (day, month) = window_starts(t);
        assert_eq!(day, days_from_civil(2026, 12, 31) as u64 * 86_400);
        assert_eq!(month, days_from_civil(2026, 12, 1) as u64 * 86_400);
    }
}
