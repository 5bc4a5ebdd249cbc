//! Attendance as a clinic bills from it: intervals open at admission and close on leaving, a
//! reconnect within the grace does not split one, and every way of leaving is told apart. The
//! same story is checked in SQLite and in PostgreSQL, and the CSV says what the JSON says.

use std::time::Duration;

use circle_tests::ops::StoreKind;
use circle_tests::Role;
use serde_json::{json, Value};

use circle_server::store::parse_rfc3339;

use super::{server, session_of};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn row<'a>(record: &'a Value, who: &str) -> &'a Value {
    record["attendance"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["participant"] == who)
        .unwrap_or_else(|| panic!("{who} is not in {record}"))
}

fn reasons(record: &Value, who: &str) -> Vec<Value> {
    row(record, who)["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["left_reason"].clone())
        .collect()
}

async fn a_whole_session(kind: StoreKind) {
    let (s, _db) = server(&kind, |c| c.room.resume_grace_ms = 1_500).await;
    let (mut f, ms) = s
        .group("tuesday", &["leaves", "drops", "removed", "times-out"])
        .await;
    let session = session_of(&s, "tuesday").await;
    let mut clients = ms.into_iter();
    let mut leaves = clients.next().unwrap();
    let mut drops = clients.next().unwrap();
    let removed = clients.next().unwrap();
    let times_out = clients.next().unwrap();

    // Leaves, and comes back: two intervals.
    leaves.request(json!({"type":"leave"})).await.ok();
    f.recv_with("participant_left", "participant", json!("leaves"))
        .await;
    let mut again = s.join("tuesday", "leaves", Role::Member).await;
    f.request(json!({"type":"admit","participant":"leaves"}))
        .await
        .ok();
    again.recv_type("welcome").await;

    // Drops and resumes within the grace: one interval.
    drops.drain().await;
    let (token, seq) = (drops.log[1]["resume_token"].clone(), drops.last_seq());
    drops.vanish();
    f.recv_connection("drops", "reconnecting").await;
    let mut back = s.resume(token, seq).await;
    back.recv_type("resumed").await;
    f.recv_connection("drops", "connected").await;

    // Removed by the facilitator.
    f.request(json!({"type":"remove","participant":"removed"}))
        .await
        .ok();
    drop(removed);

    // Drops and never comes back: the interval ends where the connection dropped.
    let dropped_at = now_ms();
    times_out.vanish();
    f.recv_connection("times-out", "reconnecting").await;
    f.recv_with("participant_left", "participant", json!("times-out"))
        .await;

    tokio::time::sleep(Duration::from_millis(100)).await;
    f.request(json!({"type":"end_session"})).await.ok();

    let record = s
        .api()
        .session_when(&session, |r| r["end_reason"] == "ended_by_facilitator")
        .await;
    assert_eq!(record["room"], "tuesday");
    assert_eq!(record["member_count"], 4, "{record}");
    assert_eq!(record["facilitators"], json!(["f"]));
    assert!(record["ended_at"].is_string());
    assert_eq!(
        reasons(&record, "leaves"),
        vec![json!("left"), json!("ended")]
    );
    assert_eq!(
        reasons(&record, "drops"),
        vec![json!("ended")],
        "a resume does not split"
    );
    assert_eq!(reasons(&record, "removed"), vec![json!("removed")]);
    assert_eq!(reasons(&record, "times-out"), vec![json!("timeout")]);
    assert_eq!(reasons(&record, "f"), vec![json!("ended")]);
    assert_eq!(row(&record, "f")["role"], "facilitator");
    // The timed-out member's presence ends at the drop, not when the grace ran out 1.5 s later.
    let timed_out = row(&record, "times-out");
    let left = timed_out["intervals"][0]["left_at"].as_str().unwrap();
    let left = parse_rfc3339(left).unwrap();
    assert!(
        left >= dropped_at.saturating_sub(50) && left < dropped_at + 1_000,
        "left at {left}, dropped at {dropped_at}"
    );
    for who in ["leaves", "drops", "removed", "times-out", "f"] {
        let r = row(&record, who);
        assert!(r["minutes_present"].as_f64().unwrap() >= 0.0);
        assert!(r["last_left_at"].is_string(), "{who}: {r}");
        // Nobody published media here: signalling only.
        assert_eq!(
            (r["audio"].clone(), r["video"].clone()),
            (json!(false), json!(false))
        );
    }

    // The CSV is the same record.
    let csv = s
        .api()
        .get(&format!("/api/v1/sessions/{session}/attendance.csv"))
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.content_type.starts_with("text/csv"),
        "{}",
        csv.content_type
    );
    let mut lines = csv.text.lines();
    assert_eq!(
        lines.next(),
        Some("participant,role,first_joined_at,last_left_at,minutes_present,intervals,audio,video")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), record["attendance"].as_array().unwrap().len());
    for line in rows {
        let cells: Vec<&str> = line.split(',').collect();
        let r = row(&record, cells[0]);
        assert_eq!(cells[1], r["role"]);
        assert_eq!(cells[2], r["first_joined_at"]);
        assert_eq!(cells[3], r["last_left_at"]);
        assert_eq!(
            cells[4].parse::<f64>().unwrap(),
            r["minutes_present"].as_f64().unwrap()
        );
        assert_eq!(
            cells[5],
            r["intervals"].as_array().unwrap().len().to_string()
        );
        assert_eq!(cells[6], r["audio"].to_string());
        assert_eq!(cells[7], r["video"].to_string());
    }

    // Listed newest first, and found by room.
    let list = s.api().get("/api/v1/sessions?room=tuesday&limit=10").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["sessions"][0]["id"], session.as_str());
    assert!(list.body["next_cursor"].is_null());

    // The facilitator's moderation is in the audit trail; the floor never is.
    let audit = s.api().get("/api/v1/audit?room=tuesday").await;
    let actions: Vec<(Value, Value)> = audit.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].clone(), e["target"].clone()))
        .collect();
    assert!(
        actions.contains(&(json!("removed"), json!("removed"))),
        "{actions:?}"
    );
    assert!(
        actions.contains(&(json!("admitted"), json!("leaves"))),
        "{actions:?}"
    );
    assert!(
        actions.contains(&(json!("ended"), Value::Null)),
        "{actions:?}"
    );
    drop((again, back));
    s.stop().await;
}

#[tokio::test]
async fn a_whole_session_is_recorded_interval_by_interval_in_sqlite() {
    a_whole_session(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn a_whole_session_is_recorded_interval_by_interval_in_postgres() {
    a_whole_session(StoreKind::Postgres).await;
}

#[tokio::test]
async fn a_session_that_empties_ends_empty_and_one_the_admin_api_ends_ends_ended_by_admin() {
    let (s, _db) = server(&StoreKind::Postgres, |c| c.room.waiting_room = false).await;
    let mut a = s.join("empties", "a", Role::Member).await;
    let session = session_of(&s, "empties").await;
    a.request(json!({"type":"leave"})).await.ok();
    let record = s
        .api()
        .session_when(&session, |r| r["end_reason"] == "empty")
        .await;
    assert_eq!(record["member_count"], 1);

    let mut f = s.join("ended", "f", Role::Facilitator).await;
    let mut m = s.join("ended", "m", Role::Member).await;
    let session = session_of(&s, "ended").await;
    let answer = s.api().call("POST", "/api/v1/rooms/ended/end", None).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    for c in [&mut f, &mut m] {
        assert_eq!(
            c.recv_type("session_ended").await["reason"],
            "ended_by_admin"
        );
        assert_eq!(c.end().await, circle_tests::End::Closed(4004));
    }
    let record = s
        .api()
        .session_when(&session, |r| r["end_reason"] == "ended_by_admin")
        .await;
    assert_eq!(reasons(&record, "m"), vec![json!("ended")]);
    let audit = s.api().get("/api/v1/audit?room=ended").await;
    assert_eq!(audit.body["events"][0]["actor"], "api");
    assert_eq!(audit.body["events"][0]["action"], "ended");
    s.stop().await;
}

#[tokio::test]
async fn with_records_off_nothing_is_written_and_the_record_endpoints_say_so() {
    let s = circle_tests::TestServer::with(|c| {
        c.operations.api_keys = vec![circle_tests::ops::API_KEY.to_owned()];
        c.room.waiting_room = false;
    })
    .await;
    let mut a = s.join("r", "a", Role::Member).await;
    a.request(json!({"type":"leave"})).await.ok();
    let answer = s.api().get("/api/v1/sessions").await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body["error"]["code"], "not_found");
    s.stop().await;
}

/// The list reads every session's attendance in two queries for the page; each session must
/// still get its own people, and only its own.
async fn a_list_of_sessions(kind: StoreKind) {
    let (s, _db) = server(&kind, |c| c.room.waiting_room = false).await;
    let mut sessions = Vec::new();
    for (room, people) in [
        ("monday", vec!["ann", "bo"]),
        ("tuesday", vec!["cy"]),
        ("wednesday", vec!["di", "ed", "fay"]),
    ] {
        let mut clients = Vec::new();
        for who in &people {
            clients.push(s.join(room, who, Role::Member).await);
        }
        let session = session_of(&s, room).await;
        for c in &mut clients {
            c.request(json!({"type":"leave"})).await.ok();
        }
        s.api()
            .session_when(&session, |r| r["end_reason"] == "empty")
            .await;
        sessions.push((session, people));
    }
    let list = s.api().get("/api/v1/sessions?limit=10").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let listed = list.body["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for (session, people) in &sessions {
        let record = listed
            .iter()
            .find(|r| r["id"] == session.as_str())
            .unwrap_or_else(|| panic!("{session} is not listed"));
        let mut present: Vec<&str> = record["attendance"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["participant"].as_str().unwrap())
            .collect();
        present.sort_unstable();
        assert_eq!(&present, people, "{record}");
        assert_eq!(record["member_count"], people.len());
        // The list says what the session's own record says.
        let alone = s.api().get(&format!("/api/v1/sessions/{session}")).await;
        assert_eq!(&alone.body, record);
    }
    s.stop().await;
}

#[tokio::test]
async fn a_list_of_sessions_gives_each_its_own_attendance_in_sqlite() {
    a_list_of_sessions(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn a_list_of_sessions_gives_each_its_own_attendance_in_postgres() {
    a_list_of_sessions(StoreKind::Postgres).await;
}
