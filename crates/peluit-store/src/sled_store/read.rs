//! The read side of the sled store: lock-free lookups and the lazy export reader, which
//! holds only tree handles, never a whole attachment.

use std::sync::Arc;

use peluit_proto::ids::{CaseId, InstitutionId};
use peluit_proto::sealed::SealedMessage;

use super::keys::{Key, TreeId, trailing_u64};
use super::records::{
    CaseRec, CaseStateRec, ExportKindRec, ExportRec, MailboxKindRec, MailboxRec, Record, UploadRec,
};
use crate::model::{
    CaseRecord, CaseState, ExportItem, MailboxEntry, MailboxKind, ManifestBytes,
    SealedMailboxMessage, SealedReplyBytes, StoredManifest,
};
use crate::{Error, Result};

/// The store's trees, indexed by [`TreeId`]; cheap to clone (sled trees are handles).
#[derive(Clone)]
pub(crate) struct Trees(Arc<[sled::Tree]>);

impl Trees {
    pub(crate) fn new(trees: Vec<sled::Tree>) -> Self {
        Self(trees.into())
    }

    pub(crate) fn get(&self, tree: TreeId) -> &sled::Tree {
        &self.0[tree.index()]
    }

    pub(crate) fn get_record<R: Record>(&self, tree: TreeId, key: &Key) -> Result<Option<R>> {
        match self.get(tree).get(key.as_slice())? {
            None => Ok(None),
            Some(bytes) => R::from_bytes(&bytes).map(Some),
        }
    }

    pub(crate) fn case_record(
        &self,
        institution: &InstitutionId,
        case: CaseId,
    ) -> Result<Option<CaseRec>> {
        let key = Key::institution(institution).bytes(case.as_bytes());
        self.get_record(TreeId::Cases, &key)
    }

    /// Concatenates the pieces under `prefix` and checks the total against the length
    /// the record promised, so a missing piece is an error, never a shorter message.
    fn read_pieces(
        &self,
        tree: TreeId,
        prefix: &Key,
        expected_len: u64,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        let capacity = usize::try_from(expected_len).map_err(|_| Error::Corrupt(what))?;
        let mut bytes = Vec::with_capacity(capacity);
        for item in self.get(tree).scan_prefix(prefix.as_slice()) {
            let (_, piece) = item?;
            bytes.extend_from_slice(&piece);
        }
        if bytes.len() as u64 != expected_len {
            return Err(Error::Corrupt(what));
        }
        Ok(bytes)
    }

    pub(crate) fn envelope(
        &self,
        institution: &InstitutionId,
        case: CaseId,
        record: &CaseRec,
    ) -> Result<SealedMessage> {
        let prefix = Key::institution(institution).bytes(case.as_bytes());
        match self.read_pieces(TreeId::Envelopes, &prefix, record.envelope_len, "envelope") {
            Ok(bytes) => Ok(SealedMessage::from_stored(bytes)),
            // A deletion purging the pieces while we read is not damage.
            Err(Error::Corrupt(what)) => match self.case_record(institution, case)? {
                Some(now) if now.state == CaseStateRec::Open => Err(Error::Corrupt(what)),
                _ => Err(Error::NotFound("envelope")),
            },
            Err(error) => Err(error),
        }
    }

    /// The manifest history, or the one entry with `only` as serial.
    pub(crate) fn manifests(
        &self,
        institution: &InstitutionId,
        only: Option<u64>,
    ) -> Result<Vec<StoredManifest>> {
        let base = Key::institution(institution);
        let prefix = match only {
            Some(serial) => base.clone().u64(serial),
            None => base.clone(),
        };
        let mut history: Vec<(u64, u32, Vec<u8>)> = Vec::new();
        for item in self.get(TreeId::Manifests).scan_prefix(prefix.as_slice()) {
            let (key, piece) = item?;
            let serial = manifest_serial(&key, base.as_slice().len())?;
            let index = manifest_piece(&key, base.as_slice().len())?;
            match history.last_mut() {
                Some((last, next, bytes)) if *last == serial => {
                    // Pieces are written together in one step; a gap means damage.
                    if index != *next {
                        return Err(Error::Corrupt("manifest"));
                    }
                    *next += 1;
                    bytes.extend_from_slice(&piece);
                }
                _ => {
                    if index != 0 {
                        return Err(Error::Corrupt("manifest"));
                    }
                    history.push((serial, 1, piece.to_vec()));
                }
            }
        }
        Ok(history
            .into_iter()
            .map(|(serial, _, bytes)| StoredManifest {
                serial,
                manifest: ManifestBytes::new(bytes),
            })
            .collect())
    }

    pub(crate) fn mailbox_records(
        &self,
        institution: &InstitutionId,
        case: CaseId,
    ) -> Result<Vec<(u64, MailboxRec)>> {
        let prefix = Key::institution(institution).bytes(case.as_bytes());
        let mut records = Vec::new();
        for item in self.get(TreeId::Mailbox).scan_prefix(prefix.as_slice()) {
            let (key, value) = item?;
            let seq = trailing_u64(&key).ok_or(Error::Corrupt("mailbox"))?;
            records.push((seq, MailboxRec::from_bytes(&value)?));
        }
        Ok(records)
    }

    pub(crate) fn mailbox_bytes(
        &self,
        institution: &InstitutionId,
        case: CaseId,
        seq: u64,
        record: &MailboxRec,
    ) -> Result<Vec<u8>> {
        let prefix = Key::institution(institution)
            .bytes(case.as_bytes())
            .u64(seq);
        self.read_pieces(TreeId::MailboxPieces, &prefix, record.len, "mailbox")
    }

    pub(crate) fn mailbox_message(
        &self,
        institution: &InstitutionId,
        case: CaseId,
        seq: u64,
    ) -> Result<SealedMailboxMessage> {
        let key = Key::institution(institution)
            .bytes(case.as_bytes())
            .u64(seq);
        let record: MailboxRec = self
            .get_record(TreeId::Mailbox, &key)?
            .ok_or(Error::NotFound("message"))?;
        let bytes = self.mailbox_bytes(institution, case, seq, &record)?;
        Ok(match record.kind {
            MailboxKindRec::Reply => SealedMailboxMessage::Reply(SealedReplyBytes::new(bytes)),
            MailboxKindRec::FollowUp => {
                SealedMailboxMessage::FollowUp(SealedMessage::from_stored(bytes))
            }
        })
    }
}

/// The serial of a `manifests` key `inst/ ‖ serial ‖ piece`.
pub(crate) fn manifest_serial(key: &[u8], prefix_len: usize) -> Result<u64> {
    let field = key
        .get(prefix_len..prefix_len + 8)
        .ok_or(Error::Corrupt("manifest"))?;
    let field: [u8; 8] = field.try_into().map_err(|_| Error::Corrupt("manifest"))?;
    Ok(u64::from_be_bytes(field))
}

fn manifest_piece(key: &[u8], prefix_len: usize) -> Result<u32> {
    let field = key
        .get(prefix_len + 8..)
        .ok_or(Error::Corrupt("manifest"))?;
    let field: [u8; 4] = field.try_into().map_err(|_| Error::Corrupt("manifest"))?;
    Ok(u32::from_be_bytes(field))
}

pub(crate) fn mailbox_entry(seq: u64, record: &MailboxRec) -> MailboxEntry {
    MailboxEntry {
        seq,
        id: record.id,
        kind: match record.kind {
            MailboxKindRec::Reply => MailboxKind::Reply,
            MailboxKindRec::FollowUp => MailboxKind::FollowUp,
        },
        day: record.day,
        len: record.len,
        cursor: record.cursor,
    }
}

pub(crate) fn case_record(id: CaseId, record: CaseRec) -> CaseRecord {
    CaseRecord {
        id,
        day: record.day,
        size_bucket: record.size_bucket,
        mailbox_key: record.mailbox_key,
        state: match record.state {
            CaseStateRec::Open => CaseState::Open,
            CaseStateRec::Deleted => CaseState::Deleted,
        },
        attachments: record.attachments,
        envelope_len: record.envelope_len,
        cursor: record.cursor,
        deleted_on: record.deleted_on,
    }
}

/// Walks the `export` tree from a cursor and resolves each entry to its item, skipping
/// entries whose case was deleted after the walk began.
pub(crate) struct ExportReader {
    trees: Trees,
    institution: InstitutionId,
    entries: Option<sled::Iter>,
}

impl ExportReader {
    pub(crate) fn new(trees: Trees, institution: InstitutionId, cursor: u64) -> Self {
        // Cursors start at 1; "since u64::MAX" can hold nothing.
        let entries = cursor.checked_add(1).map(|first| {
            let from = Key::institution(&institution).u64(first).into_vec();
            let to = Key::institution(&institution).u64(u64::MAX).into_vec();
            trees.get(TreeId::Export).range(from..=to)
        });
        Self {
            trees,
            institution,
            entries,
        }
    }

    fn resolve(&self, cursor: u64, entry: ExportRec) -> Result<Option<ExportItem>> {
        let institution = &self.institution;
        let Some(case) = self.trees.case_record(institution, entry.case)? else {
            return Ok(None);
        };
        if case.state == CaseStateRec::Deleted {
            return Ok(None);
        }
        match entry.kind {
            ExportKindRec::Case => {
                let envelope = match self.trees.envelope(institution, entry.case, &case) {
                    Ok(envelope) => envelope,
                    Err(Error::NotFound(_)) => return Ok(None),
                    Err(error) => return Err(error),
                };
                Ok(Some(ExportItem::Case {
                    cursor,
                    case: case_record(entry.case, case),
                    envelope,
                }))
            }
            ExportKindRec::Attachment => {
                let upload = entry.upload.ok_or(Error::Corrupt("export"))?;
                let key = Key::institution(institution).bytes(upload.as_bytes());
                let Some(record) = self.trees.get_record::<UploadRec>(TreeId::Uploads, &key)?
                else {
                    return Ok(None);
                };
                Ok(Some(ExportItem::Attachment {
                    cursor,
                    case: entry.case,
                    upload,
                    len: record.received,
                }))
            }
            ExportKindRec::FollowUp => {
                let seq = entry.seq.ok_or(Error::Corrupt("export"))?;
                let key = Key::institution(institution)
                    .bytes(entry.case.as_bytes())
                    .u64(seq);
                let Some(record) = self.trees.get_record::<MailboxRec>(TreeId::Mailbox, &key)?
                else {
                    return Ok(None);
                };
                let bytes = self
                    .trees
                    .mailbox_bytes(institution, entry.case, seq, &record)?;
                Ok(Some(ExportItem::FollowUp {
                    cursor,
                    case: entry.case,
                    entry: mailbox_entry(seq, &record),
                    message: SealedMessage::from_stored(bytes),
                }))
            }
        }
    }
}

impl Iterator for ExportReader {
    type Item = Result<ExportItem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let item = self.entries.as_mut()?.next()?;
            let outcome = item.map_err(Error::from).and_then(|(key, value)| {
                let cursor = trailing_u64(&key).ok_or(Error::Corrupt("export"))?;
                self.resolve(cursor, ExportRec::from_bytes(&value)?)
            });
            match outcome {
                Ok(Some(item)) => return Some(Ok(item)),
                Ok(None) => continue,
                Err(error) => {
                    self.entries = None;
                    return Some(Err(error));
                }
            }
        }
    }
}
