//! The admin API's refusals (401, 400, 404, 413, 409), live rooms as counts and states, a token
//! it mints joining the room, removal, and settings that persist across a restart.

use circle_tests::ops::{Api, StoreKind, API_KEY};
use circle_tests::{End, Role, TestServer};
use serde_json::json;

use super::server;

#[tokio::test]
async fn without_a_configured_key_every_api_path_is_not_found() {
    let s = TestServer::start().await;
    for path in ["/api/v1/rooms", "/api/v1/openapi.json", "/api/v1/sessions"] {
        let answer = s.api().get(path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.body["error"]["code"], "not_found");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_unauthorized_and_the_room_carries_on() {
    let (s, _db) = server(&StoreKind::Sqlite, |c| c.room.waiting_room = false).await;
    let mut a = s.join("r", "a", Role::Member).await;
    let wrong = format!("{}x", &API_KEY[..API_KEY.len() - 1]);
    for key in [None, Some(wrong.as_str()), Some("")] {
        let api = s.api().with_key(key);
        for (method, path) in [
            ("GET", "/api/v1/rooms"),
            ("POST", "/api/v1/rooms/r/end"),
            ("GET", "/api/v1/sessions"),
            ("GET", "/api/v1/nothing-here"),
        ] {
            let answer = api.call(method, path, None).await;
            assert_eq!(answer.status, 401, "{method} {path} with {key:?}");
            assert_eq!(answer.body["error"]["code"], "unauthorized");
        }
    }
    // The document is public; the room was not ended.
    assert_eq!(
        s.api()
            .with_key(None)
            .get("/api/v1/openapi.json")
            .await
            .status,
        200
    );
    a.request(json!({"type":"raise_hand"})).await.ok();
    s.stop().await;
}

#[tokio::test]
async fn malformed_unknown_and_oversized_requests_get_their_own_errors() {
    let (s, _db) = server(&StoreKind::Sqlite, |_| {}).await;
    let api = s.api();
    let bad = api
        .call_raw("POST", "/api/v1/rooms/r/tokens", b"{not json".to_vec())
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["code"].clone()),
        (400, json!("bad_request"))
    );
    let wrong_shape = api
        .call(
            "POST",
            "/api/v1/rooms/r/tokens",
            Some(json!({"sub":"a","role":"king","name":"A"})),
        )
        .await;
    assert_eq!(wrong_shape.status, 400, "{}", wrong_shape.text);
    let bad_room = api
        .call("PUT", "/api/v1/rooms/no%20spaces", Some(json!({})))
        .await;
    assert_eq!(bad_room.status, 400);
    let bad_time = api.get("/api/v1/sessions?from=yesterday").await;
    assert_eq!(bad_time.status, 400);
    let bad_cursor = api.get("/api/v1/audit?cursor=garbage").await;
    assert_eq!(bad_cursor.status, 400);
    let big = format!(
        r#"{{"sub":"a","name":"A","role":"member","pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    let too_large = api
        .call_raw("POST", "/api/v1/rooms/r/tokens", big.into_bytes())
        .await;
    assert_eq!(
        (too_large.status, too_large.body["error"]["code"].clone()),
        (413, json!("too_large"))
    );
    for path in [
        "/api/v1/rooms/nobody-here",
        "/api/v1/sessions/0123456789abcdef",
        "/api/v1/sessions/0123456789abcdef/attendance.csv",
    ] {
        let answer = api.get(path).await;
        assert_eq!(
            (answer.status, answer.body["error"]["code"].clone()),
            (404, json!("not_found")),
            "{path}"
        );
    }
    let end = api
        .call("POST", "/api/v1/rooms/nobody-here/end", None)
        .await;
    assert_eq!(end.status, 404);
    let remove = api
        .call("DELETE", "/api/v1/rooms/nobody-here/participants/x", None)
        .await;
    assert_eq!(remove.status, 404);
    s.stop().await;
}

#[tokio::test]
async fn a_token_minted_through_the_api_joins_the_room_and_is_audited() {
    let (s, _db) = server(&StoreKind::Sqlite, |_| {}).await;
    let answer = s
        .api()
        .call(
            "POST",
            "/api/v1/rooms/thursday/tokens",
            Some(json!({"sub":"staff-17","name":"Dana","role":"facilitator","ttl_seconds":600})),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let token = answer.body["token"].as_str().unwrap();
    let link = answer.body["link"].as_str().unwrap();
    assert!(link.ends_with(&format!("/#token={token}")), "{link}");
    assert!(answer.body["expires_at"].as_str().unwrap().ends_with('Z'));
    let mut c = s.connect().await;
    c.send(json!({"type":"hello","protocol":1,"token": token}))
        .await;
    let welcome = c.recv_type("welcome").await;
    assert_eq!(welcome["you"]["id"], "staff-17");
    assert_eq!(welcome["you"]["role"], "facilitator");
    let audit = s.api().get("/api/v1/audit").await;
    let issued = &audit.body["events"][0];
    assert_eq!(
        (
            issued["action"].clone(),
            issued["actor"].clone(),
            issued["target"].clone()
        ),
        (json!("token_issued"), json!("api"), json!("staff-17"))
    );
    // Claims the server would refuse are refused here too.
    for body in [
        json!({"sub":"","name":"A","role":"member"}),
        json!({"sub":"a","name":"A","role":"member","ttl_seconds": 10_000_000}),
        json!({"sub":"a\u{202e}b","name":"A","role":"member"}),
    ] {
        let refused = s
            .api()
            .call("POST", "/api/v1/rooms/thursday/tokens", Some(body.clone()))
            .await;
        assert_eq!(refused.status, 400, "{body}");
    }
    s.stop().await;
}

#[tokio::test]
async fn live_rooms_show_counts_and_states_and_never_names() {
    let (s, _db) = server(&StoreKind::Sqlite, |c| c.room.resume_grace_ms = 5_000).await;
    let (mut f, ms) = s.group("group-a", &["m1", "m2"]).await;
    let _waiting = s.join("group-a", "m3", Role::Member).await;
    f.recv_type("waiting_room").await;
    let mut ms = ms.into_iter();
    ms.next().unwrap().vanish();
    f.recv_connection("m1", "reconnecting").await;
    let list = s.api().get("/api/v1/rooms").await;
    assert_eq!(list.status, 200);
    let room = &list.body["rooms"][0];
    assert_eq!(room["id"], "group-a");
    assert_eq!(
        (
            room["present"].clone(),
            room["reconnecting"].clone(),
            room["waiting"].clone(),
            room["facilitators"].clone()
        ),
        (json!(2), json!(1), json!(1), json!(1)),
        "{room}"
    );
    assert_eq!(room["floor_mode"], "open");
    let one = s.api().get("/api/v1/rooms/group-a").await;
    let states: Vec<(String, String)> = one.body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        states.contains(&("m1".into(), "reconnecting".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("m3".into(), "waiting".into())),
        "{states:?}"
    );
    assert!(one.body["participants"][0]["joined_at"].is_string());
    assert_eq!(one.body["session"], room["session"]);
    // Test tokens name people "Name <sub>"; no name reaches the API.
    assert!(
        !list.text.contains("Name ") && !one.text.contains("Name "),
        "{}",
        one.text
    );
    drop(ms);
    s.stop().await;
}

#[tokio::test]
async fn the_api_removes_a_member_who_may_not_rejoin_but_not_a_facilitator() {
    let (s, _db) = server(&StoreKind::Sqlite, |_| {}).await;
    let (_f, ms) = s.group("r", &["m"]).await;
    let mut m = ms.into_iter().next().unwrap();
    let answer = s
        .api()
        .call("DELETE", "/api/v1/rooms/r/participants/m", None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    m.recv_type("removed").await;
    assert_eq!(m.end().await, End::Closed(4001));
    let mut again = s.connect().await;
    again
        .send(json!({"type":"hello","protocol":1,"token": s.token("r", "m", Role::Member)}))
        .await;
    assert_eq!(again.recv_type("error").await["code"], "forbidden");
    let facilitator = s
        .api()
        .call("DELETE", "/api/v1/rooms/r/participants/f", None)
        .await;
    assert_eq!(
        (
            facilitator.status,
            facilitator.body["error"]["code"].clone()
        ),
        (409, json!("conflict"))
    );
    // The audit is written a moment after the room tells it.
    let mut audited = false;
    for _ in 0..100 {
        let audit = s.api().get("/api/v1/audit?room=r").await;
        audited = audit.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "api" && e["action"] == "removed" && e["target"] == "m");
        if audited {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(audited, "the API's removal was not audited");
    s.stop().await;
}

#[tokio::test]
async fn room_settings_apply_to_the_live_room_and_survive_a_restart() {
    let (s, db) = server(&StoreKind::Sqlite, |c| c.room.waiting_room = false).await;
    let _a = s.join("capped", "a", Role::Member).await;
    let _b = s.join("capped", "b", Role::Member).await;
    let put = s
        .api()
        .call(
            "PUT",
            "/api/v1/rooms/capped",
            Some(json!({"max_participants": 2, "turn_limit_seconds": 90})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["max_participants"], 2);
    assert_eq!(put.body["turn_limit_seconds"], 90);
    let mut c = s.connect().await;
    c.send(json!({"type":"hello","protocol":1,"token": s.token("capped", "c", Role::Member)}))
        .await;
    assert_eq!(c.recv_type("error").await["code"], "room_full");
    s.stop().await;

    let again = TestServer::with(move |c| {
        c.operations.database = Some(db);
        c.operations.api_keys = vec![API_KEY.to_owned()];
    })
    .await;
    let mut f = again.join("capped", "f", Role::Facilitator).await;
    assert_eq!(f.log[0]["room"]["turn_limit"], 90, "{}", f.log[0]);
    let shown = Api::new(again.server.addr, Some(API_KEY))
        .get("/api/v1/rooms/capped")
        .await;
    assert_eq!(shown.body["settings"]["max_participants"], 2);
    f.drain().await;
    again.stop().await;
}
