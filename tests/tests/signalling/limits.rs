//! Limits that protect the server, each tested at the limit and one past it.

use circle_tests::{Client, End, Role, TestServer};
use serde_json::json;

#[tokio::test]
async fn one_address_may_hold_its_cap_of_connections_and_no_more() {
    let s = TestServer::with(|c| c.max_connections_per_ip = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(s.connect().await);
    }
    let refused = tokio_tungstenite::connect_async(s.url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("the fourth connection was not refused: {other:?}"),
    }
    // Closing one frees its place.
    drop(open.pop());
    let mut again = None;
    for _ in 0..50 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(s.url()).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a freed place was not given back");
    s.stop().await;
}

#[tokio::test]
async fn thirty_joins_at_once_into_one_room_are_all_welcomed() {
    let s = TestServer::with(|c| {
        c.room.waiting_room = false;
        c.room.max_participants = 40;
    })
    .await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let token = s.token("storm", &format!("m{i}"), Role::Member);
        let url = s.url();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&url).await;
            c.send(json!({"type":"hello","protocol":1,"token": token}))
                .await;
            c.recv().await["type"].as_str().unwrap().to_owned()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "welcome");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_session_over_its_message_rate_is_told_and_then_closed() {
    let s = TestServer::with(|c| {
        c.message_rate = 1;
        c.message_burst = 5;
        c.room.waiting_room = false;
    })
    .await;
    let mut a = s.join("r", "a", Role::Member).await;
    // The join itself is not counted: five messages pass, the sixth is refused.
    for _ in 0..5 {
        a.send(json!({"type":"ping"})).await;
    }
    for _ in 0..5 {
        assert_eq!(a.recv_type("pong").await["type"], "pong");
    }
    a.send(json!({"type":"ping"})).await;
    let e = a.recv_type("error").await;
    assert_eq!(e["code"], "rate_limited");
    // Keeping on past another burst's worth is abuse.
    for _ in 0..10 {
        a.send_text(r#"{"type":"ping"}"#).await;
    }
    assert_eq!(a.end().await, End::Closed(1008));
    s.stop().await;
}

#[tokio::test]
async fn the_server_runs_its_cap_of_rooms_and_refuses_one_more() {
    let s = TestServer::with(|c| c.max_rooms = 2).await;
    let mut one = s.join("one", "f", Role::Facilitator).await;
    let _two = s.join("two", "f", Role::Facilitator).await;
    let mut three = s.connect().await;
    three
        .send(
            json!({"type":"hello","protocol":1,"token": s.token("three", "f", Role::Facilitator)}),
        )
        .await;
    assert_eq!(three.recv().await["code"], "room_full");
    assert_eq!(three.end().await, End::Closed(1008));
    // When a room empties, its place is free again.
    one.request(json!({"type":"leave"})).await.ok();
    one.end().await;
    let mut joined = false;
    for _ in 0..50 {
        let mut c = s.connect().await;
        c.send(
            json!({"type":"hello","protocol":1,"token": s.token("three", "f", Role::Facilitator)}),
        )
        .await;
        if c.recv().await["type"] == "welcome" {
            joined = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(joined);
    s.stop().await;
}

#[tokio::test]
async fn a_room_holds_its_cap_of_participants_and_refuses_one_more() {
    let s = TestServer::with(|c| c.room.max_participants = 3).await;
    let _f = s.join("r", "f", Role::Facilitator).await;
    let _a = s.join("r", "a", Role::Member).await;
    let _b = s.join("r", "b", Role::Observer).await;
    let mut c = s.connect().await;
    c.send(json!({"type":"hello","protocol":1,"token": s.token("r", "c", Role::Member)}))
        .await;
    assert_eq!(c.recv().await["code"], "room_full");
    s.stop().await;
}
