//! What the stories share: the real server, in-process on its own runtime thread, on a
//! listener the story bound to a loopback port, and the manifest an inspectorate signs.

use std::sync::Arc;

use peluit_proto::day::Day;
use peluit_proto::keys::{SealIdentity, SigningKey};
use peluit_proto::manifest::{
    FormDefinition, Institution as ManifestInstitution, Manifest, ManifestKey, Purpose,
};

use peluit_server::config::{Institution, Limits};
use peluit_server::state::{AppState, today};
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

/// A manifest for `institution` at `origin`, valid from yesterday for 30 days: one
/// investigator (seal and reply-signing key), the escrow key and the KWS form.
// Not every story signs its own manifest.
#[allow(dead_code)]
pub fn manifest_for(
    institution: &str,
    name: &str,
    origin: &str,
    desk: &SealIdentity,
    escrow: &SealIdentity,
    reply_key: &SigningKey,
) -> Manifest {
    let day = today();
    let shift = |days: i64| {
        Day::from_unix_seconds((day.days_since_epoch() + days) * 86_400).expect("a day near today")
    };
    Manifest {
        version: 1,
        institution: ManifestInstitution {
            id: institution.parse().expect("a valid institution id"),
            name: name.into(),
        },
        origins: vec![origin.to_owned()],
        serial: 1,
        valid_from: shift(-1),
        valid_until: shift(30),
        keys: vec![
            ManifestKey {
                holder: "investigator:ani".into(),
                purpose: Purpose::Seal,
                public: desk.recipient().to_string(),
            },
            ManifestKey {
                holder: "escrow".into(),
                purpose: Purpose::EscrowSeal,
                public: escrow.recipient().to_string(),
            },
            ManifestKey {
                holder: "investigator:ani".into(),
                purpose: Purpose::ReplySigning,
                public: reply_key.verifying_key().to_string(),
            },
        ],
        form: FormDefinition::kws_default(),
    }
}
