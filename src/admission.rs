//! Admission control: a bound on the requests in flight, server-wide and per router key. A
//! request over the bound is answered at once (503 server-wide, 429 per key, both with
//! `Retry-After`) instead of queueing, so admitted requests keep their latency and memory stays
//! bounded under any load. A ticket is held until the response is complete, streams included.

use crate::error::{ErrorKind, GatewayError};
use crate::metrics::Metrics;
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
}

/// Held while a request is in flight.
pub struct Ticket {
    _server: OwnedSemaphorePermit,
    _key: Option<OwnedSemaphorePermit>,
}

impl Admission {
    /// `per_key_max` 0: no per-key bound.
    pub fn new(server_max: usize, per_key_max: usize, keys: usize) -> Admission {
        Admission {
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheds_over_the_bounds_and_frees_on_drop() {
        let m = Metrics::default();
        let a = Admission::new(3, 2, 2);
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
}
