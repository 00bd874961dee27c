//! Start and stop: binds the listener, builds the first state, runs the accept loop, the
//! reloader and the LLM judge worker, and on stop drains connections and flushes the log. The top of the crate: nothing
//! imports it but `main` and the tests.

mod judge;
mod reload;

use crate::config::Config;
use crate::http::state::{AppState, Reloadable, StateError};
use crate::store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot connect the shared store ([store]): {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: String,
        source: std::io::Error,
    },
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub live: Arc<Reloadable>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    reloader: JoinHandle<()>,
    judge: JoinHandle<()>,
}

impl Server {
    /// Binds `listen` (use port 0 for any free port) and starts serving.
    pub async fn start(config: Config, listen: &str) -> Result<Server, StartError> {
        Server::start_from(config, listen, None).await
    }

    /// Like [`Server::start`]; `config_path` is the file the config came from, read again on
    /// SIGHUP (and, with `server.watch_config`, when it changes).
    pub async fn start_from(
        config: Config,
        listen: &str,
        config_path: Option<PathBuf>,
    ) -> Result<Server, StartError> {
        let store = match &config.store {
            None => None,
            Some(cfg) => Some(Arc::new(Store::connect(cfg).await?)),
        };
        let state = AppState::new(config, None, store)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Listen {
                listen: listen.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            listen: listen.to_string(),
            source,
        })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (read_timeout, grace) = (
            state.config.server.read_timeout,
            state.config.server.shutdown_grace,
        );
        let live = Arc::new(Reloadable::new(state, config_path));
        let app = crate::http::router(live.clone());
        let reloader = tokio::spawn(reload::reloader(live.clone()));
        let judge = tokio::spawn(judge::worker(live.clone()));
        let task = tokio::spawn(async move {
            crate::http::accept::serve(listener, app, read_timeout, grace, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Server {
            addr,
            live,
            stop: Some(stop),
            task,
            reloader,
            judge,
        })
    }

    /// Stops accepting connections, lets in-flight requests (streams included) finish, then
    /// writes every queued log record.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.reloader.abort();
        self.judge.abort();
        if let Err(e) = (&mut self.task).await {
            tracing::error!(error = %e, "server task failed");
        }
        self.live.get().logs.shutdown().await;
    }
}
