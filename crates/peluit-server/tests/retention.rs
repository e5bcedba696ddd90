//! Retention: the sweep deletes exactly the cases older than the retention period, keeps
//! their tombstones and the younger cases, and does nothing when retention is off.
#![allow(clippy::unwrap_used)]

mod common;

use common::{INSTITUTION, TestServer};
use peluit_proto::day::Day;
use peluit_proto::ids::{CaseId, InstitutionId};
use peluit_proto::keys::SigningKey;
use peluit_server::state::{apply_retention, today};
use peluit_store::{CaseState, CiphertextStore};

fn shift(day: Day, days: i64) -> Day {
    Day::from_unix_seconds((day.days_since_epoch() + days) * 86_400).unwrap()
}

async fn submit(server: &TestServer) -> CaseId {
    let envelope = server.seal(b"laporan");
    let (status, body) = server
        .submit_report(&envelope, &[], &SigningKey::generate())
        .await;
    assert_eq!(status, 201, "{body}");
    body["case"].as_str().unwrap().parse().unwrap()
}

/// Runs the retention sweep as it would run on `day`; returns how many cases it deleted.
async fn sweep(server: &TestServer, day: Day) -> usize {
    apply_retention(&server.state, day).await.unwrap()
}

#[tokio::test]
async fn cases_past_the_retention_period_are_deleted_and_younger_ones_kept() {
    let server = TestServer::start_with(|limits| limits.retention_days = 30).await;
    let id: InstitutionId = INSTITUTION.parse().unwrap();
    let first = submit(&server).await;
    let second = submit(&server).await;

    // On the last day of the period nothing goes; a day later both do.
    assert_eq!(sweep(&server, shift(today(), 30)).await, 0);
    for case in [first, second] {
        assert_eq!(server.store.case(&id, case).unwrap().state, CaseState::Open);
    }
    let later = shift(today(), 31);
    assert_eq!(sweep(&server, later).await, 2);
    for case in [first, second] {
        let record = server.store.case(&id, case).unwrap();
        assert_eq!(record.state, CaseState::Deleted);
        assert_eq!(record.deleted_on, Some(later));
        assert!(server.store.envelope(&id, case).is_err(), "ciphertext gone");
    }
    // A case still inside the period survives a sweep, which then changes nothing.
    let third = submit(&server).await;
    let digest = server.digest();
    assert_eq!(sweep(&server, shift(today(), 30)).await, 0);
    assert_eq!(server.digest(), digest);
    assert_eq!(
        server.store.case(&id, third).unwrap().state,
        CaseState::Open
    );
    server.stop().await;
}

#[tokio::test]
async fn retention_zero_keeps_every_case() {
    let server = TestServer::start().await;
    let id: InstitutionId = INSTITUTION.parse().unwrap();
    let case = submit(&server).await;
    let digest = server.digest();
    assert_eq!(sweep(&server, shift(today(), 36_500)).await, 0);
    assert_eq!(server.digest(), digest);
    assert_eq!(server.store.case(&id, case).unwrap().state, CaseState::Open);
    server.stop().await;
}
