//! Live configuration reload (SIGHUP, `systemctl reload`): the file is loaded exactly as at
//! start, checked against what is served, and swapped in whole or not at all.
//!
//! Live: new institutions, institution names, and the limits read per request. Refused,
//! keeping the old configuration entirely: a removed institution, a changed manifest key,
//! another listen address or data directory, and the limits fixed when the listener and
//! router were built (docs/operating.md#institution-add). Every reload then applies the
//! token requests waiting in the data directory (crate::token_requests).

use std::sync::Arc;

use anyhow::{Context as _, bail};
use peluit_proto::ids::InstitutionId;

use crate::config::{Config, Limits};
use crate::state::{AppState, InstitutionState, Served, today};
use crate::token_requests;

/// What an applied reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Institutions served from now on that were not before.
    pub added: Vec<InstitutionId>,
    /// Institutions whose display name changed.
    pub renamed: Vec<InstitutionId>,
    /// Limits whose value changed (all of them read per request).
    pub limits_changed: Vec<&'static str>,
}

impl ReloadSummary {
    /// True when the new file changed nothing that is served.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.renamed.is_empty() && self.limits_changed.is_empty()
    }

    /// One line for the log, e.g. `added dinas-pu; limits changed pow_bits`.
    pub fn describe(&self) -> String {
        let ids = |ids: &[InstitutionId]| {
            ids.iter()
                .map(InstitutionId::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added {}", ids(&self.added)));
        }
        if !self.renamed.is_empty() {
            parts.push(format!("renamed {}", ids(&self.renamed)));
        }
        if !self.limits_changed.is_empty() {
            parts.push(format!("limits changed {}", self.limits_changed.join(" ")));
        }
        if parts.is_empty() {
            return "nothing changed".to_owned();
        }
        parts.join("; ")
    }
}

/// The names of the limits that differ, split into those a running server reads per
/// request (live) and those fixed in its router and accept loop at start.
fn limit_changes(old: &Limits, new: &Limits) -> (Vec<&'static str>, Vec<&'static str>) {
    // Destructured without `..`: a new limit does not compile until it is sorted here.
    let Limits {
        max_json_body,
        max_upload_bytes,
        max_attachments,
        max_open_uploads,
        pow_bits,
        request_timeout_secs,
        header_read_timeout_secs,
        upload_idle_timeout_secs,
        concurrency,
        max_connections,
        max_reply_bundle,
        challenge_ttl_secs,
        mailbox_session_ttl_secs,
        byo_per_minute,
        upload_expiry_days,
        retention_days,
    } = old;
    let mut live = Vec::new();
    let mut fixed = Vec::new();
    macro_rules! sort {
        ($list:ident: $($field:ident),+) => {
            $(if *$field != new.$field { $list.push(stringify!($field)); })+
        };
    }
    sort!(live: max_upload_bytes, max_attachments, max_open_uploads, pow_bits,
        upload_idle_timeout_secs, challenge_ttl_secs, mailbox_session_ttl_secs,
        byo_per_minute, upload_expiry_days, retention_days);
    sort!(fixed: max_json_body, request_timeout_secs, header_read_timeout_secs, concurrency,
        max_connections, max_reply_bundle);
    (live, fixed)
}

/// Checks that `next` differs from `running` only in what can change live, and says what
/// it changes. The first change that needs a restart is the error.
pub fn check(running: &Config, next: &Config) -> anyhow::Result<ReloadSummary> {
    if next.listen != running.listen {
        bail!(
            "the listen address changed from {} to {}; that needs a restart (systemctl restart \
             peluit-server)",
            running.listen,
            next.listen
        );
    }
    if next.data_dir != running.data_dir {
        bail!(
            "data_dir changed from {} to {}; that needs a restart (systemctl restart \
             peluit-server)",
            running.data_dir.display(),
            next.data_dir.display()
        );
    }
    let mut summary = ReloadSummary::default();
    for old in &running.institutions {
        let Some(new) = next.institutions.iter().find(|i| i.id == old.id) else {
            bail!(
                "institution {} is missing from the file; a served institution cannot be \
                 removed live: put its [[institution]] entry back, or restart to remove it",
                old.id
            );
        };
        if new.manifest_key != old.manifest_key {
            bail!(
                "the manifest_key of institution {} changed; a served institution's key cannot \
                 change live: put the old key back (rotate keys with a new signed manifest, \
                 docs/operating.md)",
                old.id
            );
        }
        if new.name != old.name {
            summary.renamed.push(old.id.clone());
        }
    }
    for new in &next.institutions {
        if !running.institutions.iter().any(|i| i.id == new.id) {
            summary.added.push(new.id.clone());
        }
    }
    let (live, fixed) = limit_changes(&running.limits, &next.limits);
    if !fixed.is_empty() {
        bail!(
            "limits.{} changed; {} fixed at start: restart to apply",
            fixed.join(", limits."),
            if fixed.len() == 1 {
                "it is"
            } else {
                "they are"
            }
        );
    }
    summary.limits_changed = live;
    Ok(summary)
}

/// Applies reloads to a running server's state; holds the configuration it serves.
#[derive(Debug)]
pub struct Reloader {
    running: Config,
    state: AppState,
}

impl Reloader {
    /// A reloader for `state`, which serves `running`.
    pub fn new(running: Config, state: AppState) -> Self {
        Self { running, state }
    }

    /// The configuration being served.
    pub fn running(&self) -> &Config {
        &self.running
    }

    /// Applies the token requests waiting in the data directory for the institutions now
    /// served (docs/operating.md#tokens). Blocking (it writes the store).
    pub fn apply_token_requests(&self) -> token_requests::Applied {
        let served: Vec<InstitutionId> = self
            .running
            .institutions
            .iter()
            .map(|i| i.id.clone())
            .collect();
        token_requests::apply_pending(
            &self.running.data_dir,
            self.state.store_handle().as_ref(),
            &served,
        )
    }

    /// Checks `next` and, if every change can be made live, serves it: new institutions
    /// are loaded from the store (their manifest and open cases, as at start), existing
    /// ones keep their state, and the whole set is swapped in one step. On an error
    /// nothing served has changed. Blocking (it reads the store).
    pub fn reload(&mut self, next: Config) -> anyhow::Result<ReloadSummary> {
        let summary = check(&self.running, &next)?;
        let served = self.state.served();
        let store = self.state.store_handle();
        let today = today();
        let mut institutions = Vec::with_capacity(next.institutions.len());
        for config in &next.institutions {
            let state = match served
                .institutions
                .iter()
                .find(|i| i.config.id == config.id)
            {
                Some(existing) if existing.config.name == config.name => existing.clone(),
                Some(existing) => Arc::new(existing.reconfigured(config.clone())),
                None => Arc::new(
                    InstitutionState::load(store.as_ref(), config.clone(), today).with_context(
                        || {
                            format!(
                                "institution {} cannot be served: its stored manifest or cases \
                                 do not load under the configured manifest_key",
                                config.id
                            )
                        },
                    )?,
                ),
            };
            institutions.push(state);
        }
        self.state.replace_served(Served {
            institutions,
            limits: Arc::new(next.limits.clone()),
        });
        self.running = next;
        for id in &summary.added {
            if let Ok(added) = self.state.institution(id.as_str())
                && added.current_opt().is_none()
            {
                tracing::warn!(
                    institution = %id,
                    "no manifest published yet; reports are refused until one is"
                );
            }
        }
        Ok(summary)
    }
}

/// One log line for an error: the context chain on a single line.
fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}").replace(['\n', '\r'], " ")
}

/// Reloads on every SIGHUP: `load` reads the configuration exactly as at start; with no
/// `load` (the demo) the signal is logged and ignored. The handler is installed before
/// this returns, so a SIGHUP that arrives once the caller serves never kills the process.
pub fn spawn_on_hangup<L>(mut reloader: Reloader, load: Option<L>) -> std::io::Result<()>
where
    L: Fn() -> anyhow::Result<Config> + Send + Sync + 'static,
{
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    let load = load.map(Arc::new);
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(load) = load.clone() else {
                tracing::warn!("SIGHUP: the demo has no configuration file to reload; ignored");
                continue;
            };
            // Loading the file and the new institutions' state is blocking work.
            let outcome = tokio::task::spawn_blocking(move || {
                let result = load().and_then(|next| reloader.reload(next));
                // After the configuration, so that a token for an institution this reload
                // adds is stored now; whether or not the file could be applied, since a
                // request never depends on it; and before the line that says "reloaded",
                // so that a token works once that line is logged.
                let tokens = reloader.apply_token_requests();
                (reloader, result, tokens)
            })
            .await;
            let (result, tokens);
            (reloader, result, tokens) = match outcome {
                Ok(done) => done,
                Err(_) => {
                    tracing::error!("the configuration reload task failed; reloads stop");
                    return;
                }
            };
            tokens.log();
            match result {
                Ok(summary) => tracing::info!("configuration reloaded: {}", summary.describe()),
                Err(error) => tracing::warn!(
                    "configuration reload refused, still serving the previous configuration: {}",
                    one_line(&error)
                ),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use peluit_proto::keys::SigningKey;

    use super::*;
    use crate::config::Institution;

    fn institution(id: &str, name: &str, key: &SigningKey) -> Institution {
        Institution {
            id: id.parse().unwrap(),
            name: name.into(),
            manifest_key: key.verifying_key(),
        }
    }

    fn config(institutions: Vec<Institution>) -> Config {
        Config {
            listen: "127.0.0.1:8080".parse().unwrap(),
            data_dir: PathBuf::from("/var/lib/peluit/store"),
            institutions,
            limits: Limits::default(),
        }
    }

    fn served_ids(state: &AppState) -> Vec<String> {
        state
            .institutions()
            .iter()
            .map(|i| format!("{}={}", i.config.id, i.config.name))
            .collect()
    }

    #[test]
    fn only_live_changes_pass_the_check() {
        let (a, b) = (SigningKey::generate(), SigningKey::generate());
        let running = config(vec![institution("itjen", "Itjen", &a)]);

        let mut next = config(vec![
            institution("itjen", "Itjen Kemenkeu", &a),
            institution("dinas-pu", "Dinas PU", &b),
        ]);
        next.limits.pow_bits = 20;
        next.limits.retention_days = 30;
        let summary = check(&running, &next).unwrap();
        assert_eq!(summary.added, ["dinas-pu".parse().unwrap()]);
        assert_eq!(summary.renamed, ["itjen".parse().unwrap()]);
        assert_eq!(summary.limits_changed, ["pow_bits", "retention_days"]);
        assert_eq!(
            summary.describe(),
            "added dinas-pu; renamed itjen; limits changed pow_bits retention_days"
        );
        let unchanged = check(&running, &running).unwrap();
        assert!(unchanged.is_empty());
        assert_eq!(unchanged.describe(), "nothing changed");

        let refused = |next: Config, why: &str| {
            let error = check(&running, &next).unwrap_err().to_string();
            assert!(error.contains(why), "{why}: {error}");
        };
        refused(
            config(vec![institution("dinas-pu", "Dinas PU", &b)]),
            "removed live",
        );
        refused(
            config(vec![institution("itjen", "Itjen", &b)]),
            "manifest_key",
        );
        let mut moved = running.clone();
        moved.listen = "127.0.0.1:9090".parse().unwrap();
        refused(moved, "listen address");
        let mut moved = running.clone();
        moved.data_dir = PathBuf::from("/srv/peluit");
        refused(moved, "data_dir");
        let mut tightened = running.clone();
        tightened.limits.concurrency = 8;
        tightened.limits.max_connections = 16;
        refused(tightened, "limits.concurrency, limits.max_connections");
    }

    #[test]
    fn a_reload_swaps_the_set_whole_and_a_refused_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(peluit_store::SledStore::open(dir.path().join("store")).unwrap());
        let (a, b) = (SigningKey::generate(), SigningKey::generate());
        let running = config(vec![institution("itjen", "Itjen", &a)]);
        let state = AppState::new(
            store,
            running.institutions.clone(),
            running.limits.clone(),
            dir.path().to_owned(),
        )
        .unwrap();
        let before = state.institution("itjen").unwrap();
        let mut reloader = Reloader::new(running, state.clone());

        let mut broken = config(vec![
            institution("dinas-pu", "Dinas PU", &b),
            institution("itjen", "Itjen", &b),
        ]);
        broken.limits.pow_bits = 30;
        assert!(reloader.reload(broken).is_err());
        assert_eq!(served_ids(&state), ["itjen=Itjen"]);
        assert_eq!(state.limits().pow_bits, Limits::default().pow_bits);
        assert_eq!(reloader.running().institutions.len(), 1);

        let mut next = config(vec![
            institution("dinas-pu", "Dinas PU", &b),
            institution("itjen", "Itjen Kemenkeu", &a),
        ]);
        next.limits.pow_bits = 12;
        reloader.reload(next).unwrap();
        assert_eq!(
            served_ids(&state),
            ["dinas-pu=Dinas PU", "itjen=Itjen Kemenkeu"]
        );
        assert_eq!(state.limits().pow_bits, 12);
        // A request that read the institution before the swap keeps its consistent view.
        assert_eq!(before.config.name, "Itjen");
        // The renamed institution shares its mailbox index with the one it replaced.
        let mailbox = SigningKey::generate().verifying_key();
        let case = peluit_proto::ids::CaseId::random();
        before.reserve_mailbox(&mailbox).unwrap();
        before.release_mailbox(&mailbox, Some(case));
        let after = state.institution("itjen").unwrap();
        assert_eq!(after.case_of_mailbox(&mailbox), Some(case));
    }
}
