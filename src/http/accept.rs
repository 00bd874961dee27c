//! Accepting connections: TCP_NODELAY on each, a time limit for a client to start and to finish
//! sending its request headers (a slow or silent client is disconnected, never held), HTTP/1.1
//! and HTTP/2, and a graceful drain that lets in-flight requests and streams finish.
//! (The body's own time limit is applied where it is read, so its error has the API's shape.)

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until `stop` fires, then waits at most `grace` for open
/// connections to finish what they are doing (requests still running then are cut off).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    read_timeout: Duration,
    grace: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    // Tells connections that have not sent a byte yet to go at once when the server stops
    // (each holds a drain watcher, which the drain below would otherwise wait for).
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    tokio::pin!(stop);
    loop {
        while connections.try_join_next().is_some() {}
        let (mut tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        nodelay(&mut tcp);
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let mut stopping = stopping.clone();
        let service = TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            // A client that sends nothing (or only the start of the HTTP/2 preface) is
            // dropped at the read timeout; the HTTP/1 header timer takes over from there.
            tokio::select! {
                known = protocol_known(&tcp, read_timeout) => if !known { return },
                _ = stopping.wait_for(|s| *s) => return,
            }
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                .into_owned();
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "shutdown grace period over; cutting off the requests still running"
        );
    }
    connections.abort_all();
}

/// Disables Nagle's algorithm on accepted connections: SSE chunks are small, and Nagle with
/// delayed ACKs would hold them for tens of milliseconds.
pub fn nodelay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

/// The HTTP/2 prior-knowledge preface; anything else is HTTP/1.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits (at most `limit`) until the first bytes tell HTTP/1 from HTTP/2; false when the client
/// closed or stayed silent.
async fn protocol_known(tcp: &tokio::net::TcpStream, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; PREFACE.len()];
    loop {
        let n = match tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return false,
        };
        if n == 0 {
            return false;
        }
        if n == PREFACE.len() || buf[..n] != PREFACE[..n] {
            return true;
        }
        // Part of the preface so far: wait for the rest.
        if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(5)))
            .await
            .is_err()
        {
            return false;
        }
    }
}
