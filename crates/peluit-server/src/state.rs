//! Shared server state: the store (called off the async runtime), each institution's
//! verified current manifest, and the short-lived mailbox challenges and sessions that
//! live only in memory (docs/api.md#mailbox). The institutions and limits are one snapshot
//! that a configuration reload swaps whole (crate::reload).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;
use std::time::{Duration, Instant};

use peluit_proto::day::Day;
use peluit_proto::ids::{CaseId, InstitutionId};
use peluit_proto::keys::VerifyingKey;
use peluit_proto::manifest::{SignedManifest, VerifiedManifest, VerifyPolicy};
use peluit_store::{CiphertextStore, Error as StoreError};

use crate::config::{Institution, Limits};
use crate::error::{ApiError, ErrorCode};

/// Most challenges and sessions held in memory at once; beyond that new ones are refused
/// (429) until old ones expire, so a flood cannot grow memory without bound.
const MAX_PENDING: usize = 100_000;

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

struct Inner {
    store: Arc<dyn CiphertextStore>,
    served: ArcSwap<Served>,
    challenges: Mutex<HashMap<[u8; 32], (InstitutionId, Instant)>>,
    sessions: Mutex<HashMap<[u8; 32], MailboxSession>>,
    byo_window: Mutex<(Instant, u32)>,
    spool_dir: PathBuf,
}

/// What the server serves right now: the institutions in configuration order and the
/// limits. A request reads one snapshot; a reload replaces it whole, so a request sees
/// either the old configuration or the new one, never a mix.
#[derive(Debug)]
pub struct Served {
    /// Institutions, in configuration order.
    pub institutions: Vec<Arc<InstitutionState>>,
    /// Limits in force.
    pub limits: Arc<Limits>,
}

/// One institution: its configuration, its current verified manifest, and the index from
/// mailbox key to case (the store looks cases up by id only).
pub struct InstitutionState {
    /// Configuration (id, name, pinned manifest key).
    pub config: Institution,
    runtime: Arc<InstitutionRuntime>,
}

/// The part of an institution's state that outlives a reload: a renamed institution gets
/// a new `InstitutionState` around the same runtime, so its manifest cache, publication
/// lock and mailbox index carry over.
struct InstitutionRuntime {
    current: RwLock<Option<Arc<VerifiedManifest>>>,
    /// Serialises manifest publication, so the cached current manifest always matches
    /// the store's latest.
    publish_lock: tokio::sync::Mutex<()>,
    mailboxes: Mutex<MailboxIndex>,
}

impl std::fmt::Debug for InstitutionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstitutionState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct MailboxIndex {
    cases: HashMap<[u8; 32], CaseId>,
    pending: std::collections::HashSet<[u8; 32]>,
}

/// A reporter's authenticated mailbox session: proof that the holder of `mailbox_key`
/// answered a fresh challenge.
#[derive(Clone, Debug)]
pub struct MailboxSession {
    /// The institution.
    pub institution: InstitutionId,
    /// The mailbox key that signed the response.
    pub mailbox_key: VerifyingKey,
    /// The case whose mailbox this is.
    pub case: CaseId,
    expires: Instant,
}

impl AppState {
    /// Builds the state: loads and verifies every configured institution's latest
    /// manifest from the store, and indexes open cases by mailbox key.
    pub fn new(
        store: Arc<dyn CiphertextStore>,
        institutions: Vec<Institution>,
        limits: Limits,
        spool_dir: PathBuf,
    ) -> anyhow::Result<Self> {
        let today = today();
        let mut states = Vec::new();
        for config in institutions {
            states.push(Arc::new(InstitutionState::load(
                store.as_ref(),
                config,
                today,
            )?));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                served: ArcSwap::from_pointee(Served {
                    institutions: states,
                    limits: Arc::new(limits),
                }),
                challenges: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                byo_window: Mutex::new((Instant::now(), 0)),
                spool_dir,
            }),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> Arc<Limits> {
        self.inner.served.load().limits.clone()
    }

    /// The whole served snapshot (institutions and limits), as one consistent view.
    pub fn served(&self) -> Arc<Served> {
        self.inner.served.load_full()
    }

    /// Replaces the served snapshot in one step; requests already running keep the one
    /// they read.
    pub fn replace_served(&self, served: Served) {
        self.inner.served.store(Arc::new(served));
    }

    /// Where large bring-your-own files wait (as anonymous temporary files) before they
    /// are copied into the store.
    pub fn spool_dir(&self) -> &Path {
        &self.inner.spool_dir
    }

    /// Every configured institution, in configuration order.
    pub fn institutions(&self) -> Vec<Arc<InstitutionState>> {
        self.inner.served.load().institutions.clone()
    }

    /// A configured institution by the id in a URL.
    pub fn institution(&self, id: &str) -> Result<Arc<InstitutionState>, ApiError> {
        self.inner
            .served
            .load()
            .institutions
            .iter()
            .find(|i| i.config.id.as_str() == id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("unknown institution"))
    }

    /// Runs a blocking store call on the blocking pool and maps its errors. Writes return
    /// only after the store's durable commit.
    pub async fn store<T, F>(&self, call: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn CiphertextStore) -> peluit_store::Result<T> + Send + 'static,
    {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || call(store.as_ref()))
            .await
            .map_err(|_| ApiError::internal("store task panicked"))?
            .map_err(store_error)
    }

    /// The store itself, for code already on a blocking thread.
    pub fn store_handle(&self) -> Arc<dyn CiphertextStore> {
        self.inner.store.clone()
    }

    /// Remembers a freshly issued challenge nonce until it is used or expires.
    pub fn remember_challenge(
        &self,
        institution: &InstitutionId,
        nonce: [u8; 32],
    ) -> Result<(), ApiError> {
        let ttl = Duration::from_secs(self.limits().challenge_ttl_secs);
        let mut challenges = lock(&self.inner.challenges);
        let now = Instant::now();
        if challenges.len() >= MAX_PENDING {
            challenges.retain(|_, (_, expires)| *expires > now);
            if challenges.len() >= MAX_PENDING {
                return Err(ApiError::new(
                    ErrorCode::TooManyRequests,
                    "challenge table full",
                ));
            }
        }
        challenges.insert(nonce, (institution.clone(), now + ttl));
        Ok(())
    }

    /// Takes a challenge nonce out of the table: it works once, and only before it
    /// expires, for the institution it was issued for (docs/protocol.md#mailbox-auth).
    pub fn take_challenge(&self, institution: &InstitutionId, nonce: &[u8; 32]) -> bool {
        let mut challenges = lock(&self.inner.challenges);
        match challenges.remove(nonce) {
            Some((issued_for, expires)) => issued_for == *institution && expires > Instant::now(),
            None => false,
        }
    }

    /// Opens a mailbox session and returns its secret handle.
    pub fn open_session(
        &self,
        institution: &InstitutionId,
        mailbox_key: VerifyingKey,
        case: CaseId,
    ) -> Result<[u8; 32], ApiError> {
        use rand::RngCore as _;
        let ttl = Duration::from_secs(self.limits().mailbox_session_ttl_secs);
        let mut handle = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut handle);
        let key = crate::tokens::token_hash(&hex::encode(handle));
        let mut sessions = lock(&self.inner.sessions);
        let now = Instant::now();
        if sessions.len() >= MAX_PENDING {
            sessions.retain(|_, s| s.expires > now);
            if sessions.len() >= MAX_PENDING {
                return Err(ApiError::new(
                    ErrorCode::TooManyRequests,
                    "session table full",
                ));
            }
        }
        sessions.insert(
            key,
            MailboxSession {
                institution: institution.clone(),
                mailbox_key,
                case,
                expires: now + ttl,
            },
        );
        Ok(handle)
    }

    /// The live session for a presented handle (hex), if any. Sessions are keyed by the
    /// handle's hash, so the table never holds a usable handle.
    pub fn session(&self, institution: &InstitutionId, handle_hex: &str) -> Option<MailboxSession> {
        let key = crate::tokens::token_hash(handle_hex);
        let sessions = lock(&self.inner.sessions);
        sessions
            .get(&key)
            .filter(|s| s.expires > Instant::now() && s.institution == *institution)
            .cloned()
    }

    /// Counts one bring-your-own-ciphertext submission against the per-minute budget.
    pub fn take_byo_slot(&self) -> Result<(), ApiError> {
        let mut window = lock(&self.inner.byo_window);
        let now = Instant::now();
        if now.duration_since(window.0) >= Duration::from_secs(60) {
            *window = (now, 0);
        }
        if window.1 >= self.limits().byo_per_minute {
            return Err(ApiError::new(
                ErrorCode::TooManyRequests,
                "bring-your-own budget spent for this minute",
            ));
        }
        window.1 += 1;
        Ok(())
    }

    /// Drops expired challenges and sessions.
    pub fn sweep_expired(&self) {
        let now = Instant::now();
        lock(&self.inner.challenges).retain(|_, (_, expires)| *expires > now);
        lock(&self.inner.sessions).retain(|_, s| s.expires > now);
    }
}

impl InstitutionState {
    /// Loads an institution from the store: its latest manifest, verified under the
    /// configured key, and the mailbox index of its open cases. Blocking.
    pub fn load(
        store: &dyn CiphertextStore,
        config: Institution,
        today: Day,
    ) -> anyhow::Result<Self> {
        let current = match store.latest_manifest(&config.id)? {
            Some(stored) => Some(Arc::new(verify_stored(
                &config,
                stored.manifest.as_bytes(),
                today,
            )?)),
            None => None,
        };
        let mut index = MailboxIndex::default();
        // The far future: every open case.
        let end = Day::new(9999, 12, 31)?;
        for case in store.cases_before(&config.id, end)? {
            let record = store.case(&config.id, case)?;
            index.cases.insert(record.mailbox_key.to_bytes(), case);
        }
        Ok(Self {
            config,
            runtime: Arc::new(InstitutionRuntime {
                current: RwLock::new(current),
                publish_lock: tokio::sync::Mutex::new(()),
                mailboxes: Mutex::new(index),
            }),
        })
    }

    /// The same institution under a changed configuration (its display name), keeping its
    /// manifest cache, publication lock and mailbox index. The id and manifest key must
    /// not change: crate::reload refuses that before it gets here.
    pub fn reconfigured(&self, config: Institution) -> Self {
        Self {
            config,
            runtime: self.runtime.clone(),
        }
    }

    /// Serialises manifest publication for this institution.
    pub fn publish_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.runtime.publish_lock
    }

    /// The current verified manifest, or 404 when none was published yet.
    pub fn current(&self) -> Result<Arc<VerifiedManifest>, ApiError> {
        self.runtime
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .ok_or_else(|| ApiError::not_found("no manifest published yet"))
    }

    /// The current manifest, if any.
    pub fn current_opt(&self) -> Option<Arc<VerifiedManifest>> {
        self.runtime
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the current manifest after a durable publish.
    pub fn set_current(&self, manifest: VerifiedManifest) {
        *self
            .runtime
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(manifest));
    }

    /// Reserves a mailbox key for a submission in progress: one mailbox, one case.
    pub fn reserve_mailbox(&self, key: &VerifyingKey) -> Result<(), ApiError> {
        let mut index = lock(&self.runtime.mailboxes);
        let bytes = key.to_bytes();
        if index.cases.contains_key(&bytes) || !index.pending.insert(bytes) {
            return Err(ApiError::conflict("mailbox key already has a case"));
        }
        Ok(())
    }

    /// Ends a reservation: records the case when the submission was stored.
    pub fn release_mailbox(&self, key: &VerifyingKey, case: Option<CaseId>) {
        let mut index = lock(&self.runtime.mailboxes);
        let bytes = key.to_bytes();
        index.pending.remove(&bytes);
        if let Some(case) = case {
            index.cases.insert(bytes, case);
        }
    }

    /// Forgets a deleted case's mailbox.
    pub fn forget_case(&self, case: CaseId) {
        lock(&self.runtime.mailboxes)
            .cases
            .retain(|_, c| *c != case);
    }

    /// The case of a mailbox key.
    pub fn case_of_mailbox(&self, key: &VerifyingKey) -> Option<CaseId> {
        lock(&self.runtime.mailboxes)
            .cases
            .get(&key.to_bytes())
            .copied()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Today in UTC. The server reads the clock only to the day (docs/protocol.md#dates).
pub fn today() -> Day {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Day::from_unix_seconds(seconds).unwrap_or_else(|_| unreachable!("the clock is within 9999"))
}

/// Verifies a stored manifest for the server's own use (its recipient count and reply
/// keys). Expiry is the page's and desk's to enforce; the server keeps serving the last
/// manifest it has, so the date is clamped into the validity window here.
pub fn verify_stored(
    institution: &Institution,
    bytes: &[u8],
    today: Day,
) -> anyhow::Result<VerifiedManifest> {
    let signed = SignedManifest::from_json(bytes)?;
    let m = signed.manifest();
    if m.valid_from > m.valid_until {
        anyhow::bail!(
            "stored manifest of {} has an empty validity period",
            institution.id
        );
    }
    if today > m.valid_until {
        tracing::warn!(institution = %institution.id, "the current manifest has expired; publish a new one");
    }
    let day = today.clamp(m.valid_from, m.valid_until);
    let verified = signed.verify(&VerifyPolicy::new(institution.manifest_key, day))?;
    if verified.institution_id() != &institution.id {
        anyhow::bail!(
            "stored manifest of {} names another institution",
            institution.id
        );
    }
    Ok(verified)
}

/// Maps a store error onto the API's codes; the store's messages name no stored data.
pub fn store_error(error: StoreError) -> ApiError {
    let code = match &error {
        StoreError::NotFound(_) => ErrorCode::NotFound,
        StoreError::Conflict(_) => ErrorCode::Conflict,
        StoreError::Invalid(_) => ErrorCode::BadRequest,
        StoreError::TooLarge(_) => ErrorCode::PayloadTooLarge,
        StoreError::ReadOnly => ErrorCode::ReadOnly,
        _ => ErrorCode::Internal,
    };
    ApiError::from_library(code, &error)
}

/// Deletes, for every institution, the open cases submitted more than
/// `limits.retention_days` before `today` (none when it is 0), keeping their tombstones.
/// Returns how many were deleted; only that count is logged, never a case id.
pub async fn apply_retention(state: &AppState, today: Day) -> Result<usize, ApiError> {
    let days = i64::from(state.limits().retention_days);
    if days == 0 {
        return Ok(0);
    }
    // A case from day D is kept through D + retention_days.
    let before = Day::from_unix_seconds((today.days_since_epoch() - days) * 86_400)
        .map_err(|_| ApiError::internal("retention day out of range"))?;
    let mut deleted = 0;
    for institution in state.institutions() {
        let id = institution.config.id.clone();
        let cases = state
            .store(move |store| {
                let cases = store.cases_before(&id, before)?;
                for case in &cases {
                    store.delete_case(&id, *case, today)?;
                }
                Ok(cases)
            })
            .await?;
        for case in &cases {
            institution.forget_case(*case);
        }
        deleted += cases.len();
    }
    if deleted > 0 {
        tracing::info!(
            count = deleted,
            "retention: deleted cases past the retention period"
        );
    }
    Ok(deleted)
}

/// Runs housekeeping every hour: drops expired challenges and sessions, removes uploads
/// never attached to a case after the configured number of days, deletes cases past
/// the retention period, and resets the upload files' times (docs/storage.md#file-times).
pub fn spawn_sweeper(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            state.sweep_expired();
            let days = i64::from(state.limits().upload_expiry_days);
            let Ok(before) = Day::from_unix_seconds((today().days_since_epoch() - days) * 86_400)
            else {
                continue;
            };
            match state.store(move |store| store.expire_uploads(before)).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "expired unattached uploads"),
                Err(error) => tracing::warn!(code = error.code().as_str(), "upload sweep failed"),
            }
            if let Err(error) = apply_retention(&state, today()).await {
                tracing::warn!(code = error.code().as_str(), "retention sweep failed");
            }
            // Last, after the removals above: every file's change time becomes this
            // hour's sweep instead of its own upload's.
            match state.store(|store| store.reset_file_times()).await {
                Ok(reset) if reset.failed > 0 => {
                    tracing::warn!(
                        failed = reset.failed,
                        "could not reset some upload files' times"
                    );
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(code = error.code().as_str(), "file time sweep failed")
                }
            }
        }
    });
}
