//! What the stories share: the real server, in-process on its own runtime thread, on a
//! listener the story bound to a loopback port.

use std::sync::Arc;

use peluit_server::config::{Institution, Limits};
use peluit_server::state::AppState;
use peluit_store::SledStore;

/// A running server; dropping it stops it and waits for it to finish.
pub struct Server {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serves `institutions` from `store` on `listener` until dropped.
    pub fn start(
        listener: std::net::TcpListener,
        store: Arc<SledStore>,
        institutions: Vec<Institution>,
        limits: Limits,
        spool: std::path::PathBuf,
    ) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        listener
            .set_nonblocking(true)
            .expect("the listener goes non-blocking");
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a runtime for the server");
            runtime.block_on(async move {
                let state =
                    AppState::new(store, institutions, limits, spool).expect("server state");
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                peluit_server::serve(listener, state, async {
                    let _ = rx.await;
                })
                .await
                .expect("the server runs until stopped");
            });
        });
        Self {
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
