//! Admission control: bounds on the requests in flight, server-wide and per router key, and on
//! the request bodies they hold in memory. A request over a bound is answered at once (503
//! server-wide or over the body budget, 429 per key, all with `Retry-After`) instead of
//! queueing, so admitted requests keep their latency and memory stays bounded under any load.
//! A ticket is held until the response is complete, streams included.

use crate::error::{ErrorKind, GatewayError};
use crate::observe::metrics::Metrics;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Seconds a shed client is told to wait.
const RETRY_AFTER_SECS: u64 = 1;

/// The in-flight bounds of one server.
pub struct Admission {
    server: Arc<Semaphore>,
    server_max: usize,
    /// One bound per configured router key (by its index), when a per-key limit is set.
    per_key: Vec<Arc<Semaphore>>,
    per_key_max: usize,
    /// Request-body bytes held by requests in flight, in KiB.
    body_kib: Arc<Semaphore>,
    body_budget: usize,
}

/// Held while a request is in flight.
pub struct Ticket {
    _server: OwnedSemaphorePermit,
    _key: Option<OwnedSemaphorePermit>,
    _body: Option<OwnedSemaphorePermit>,
}

impl Admission {
    /// Whether two server configs give the same admission (so a reload keeps the counters).
    pub fn same_settings(a: &crate::config::ServerConfig, b: &crate::config::ServerConfig) -> bool {
        (
            a.max_in_flight,
            a.max_in_flight_per_key,
            &a.api_keys,
            a.max_body_memory,
        ) == (
            b.max_in_flight,
            b.max_in_flight_per_key,
            &b.api_keys,
            b.max_body_memory,
        )
    }

    /// `per_key_max` 0: no per-key bound; `body_budget`: bytes of request bodies in flight.
    pub fn new(
        server_max: usize,
        per_key_max: usize,
        keys: usize,
        body_budget: usize,
    ) -> Admission {
        Admission {
            body_kib: Arc::new(Semaphore::new(body_budget.div_ceil(1024).max(1))),
            body_budget,
            server: Arc::new(Semaphore::new(server_max.max(1))),
            server_max: server_max.max(1),
            per_key: if per_key_max == 0 {
                Vec::new()
            } else {
                (0..keys)
                    .map(|_| Arc::new(Semaphore::new(per_key_max)))
                    .collect()
            },
            per_key_max,
        }
    }

    /// Admits a request of router key `key` (its index), or says why not.
    pub fn admit(&self, key: Option<usize>, metrics: &Metrics) -> Result<Ticket, GatewayError> {
        let key_permit = match key.and_then(|k| self.per_key.get(k)) {
            Some(s) => Some(s.clone().try_acquire_owned().map_err(|_| {
                metrics.shed_key.fetch_add(1, Ordering::Relaxed);
                GatewayError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "this API key already has {} requests in flight (server.max_in_flight_per_key); retry after {RETRY_AFTER_SECS} s",
                        self.per_key_max
                    ),
                )
                .with_retry_after(RETRY_AFTER_SECS)
            })?),
            None => None,
        };
        let server = self.server.clone().try_acquire_owned().map_err(|_| {
            metrics.shed_server.fetch_add(1, Ordering::Relaxed);
            GatewayError::new(
                ErrorKind::Overloaded,
                format!(
                    "Switchyard is at its limit of {} requests in flight (server.max_in_flight); retry after {RETRY_AFTER_SECS} s",
                    self.server_max
                ),
            )
            .with_retry_after(RETRY_AFTER_SECS)
        })?;
        Ok(Ticket {
            _server: server,
            _key: key_permit,
            _body: None,
        })
    }

    /// Reserves memory for a body of up to `bytes` (its declared length, or the body limit),
    /// held with the ticket; 503 when the bodies in flight already fill the budget.
    pub fn admit_body(
        &self,
        ticket: &mut Ticket,
        bytes: usize,
        metrics: &Metrics,
    ) -> Result<(), GatewayError> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let permit = self.body_kib.clone().try_acquire_many_owned(kib).map_err(|_| {
            metrics.shed_server.fetch_add(1, Ordering::Relaxed);
            GatewayError::new(
                ErrorKind::Overloaded,
                format!(
                    "request bodies in flight already take the budget of {} bytes (server.max_body_memory); retry after {RETRY_AFTER_SECS} s",
                    self.body_budget
                ),
            )
            .with_retry_after(RETRY_AFTER_SECS)
        })?;
        ticket._body = Some(permit);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheds_over_the_bounds_and_frees_on_drop() {
        let m = Metrics::default();
        let a = Admission::new(3, 2, 2, 10 * 1024);
        let t1 = a.admit(Some(0), &m).unwrap();
        let _t2 = a.admit(Some(0), &m).unwrap();
        let e = a.admit(Some(0), &m).err().unwrap();
        assert_eq!((e.status.as_u16(), e.retry_after), (429, Some(1)));
        let _t3 = a.admit(Some(1), &m).unwrap();
        let e = a.admit(None, &m).err().unwrap();
        assert_eq!(e.status.as_u16(), 503);
        drop(t1);
        assert!(a.admit(None, &m).is_ok());
        assert_eq!(m.shed_key.load(Ordering::Relaxed), 1);
        assert_eq!(m.shed_server.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn bodies_in_flight_share_a_memory_budget() {
        let m = Metrics::default();
        let a = Admission::new(10, 0, 0, 10 * 1024);
        let mut t1 = a.admit(None, &m).unwrap();
        a.admit_body(&mut t1, 8 * 1024, &m).unwrap();
        let mut t2 = a.admit(None, &m).unwrap();
        let e = a.admit_body(&mut t2, 4 * 1024, &m).unwrap_err();
        assert!(
            e.message.contains("server.max_body_memory"),
            "{}",
            e.message
        );
        a.admit_body(&mut t2, 2 * 1024, &m).unwrap();
        drop(t1);
        let mut t3 = a.admit(None, &m).unwrap();
        a.admit_body(&mut t3, 8 * 1024, &m).unwrap();
    }
}
