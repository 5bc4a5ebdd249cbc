//! Golden JSON files, one per message type: each must decode and re-encode to the same JSON.

use std::fs;
use std::path::Path;

use circle_protocol::{decode_client, ServerFrame, CLIENT_TYPES};
use serde_json::Value;

fn golden(dir: &str) -> Vec<(String, Value, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(dir);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).unwrap(), text)
        })
        .collect()
}

#[test]
fn every_client_message_type_has_a_golden_file() {
    let names: Vec<String> = golden("client").into_iter().map(|(n, _, _)| n).collect();
    for t in CLIENT_TYPES {
        assert!(names.iter().any(|n| n == t), "no golden file for {t}");
    }
}

#[test]
fn client_golden_files_round_trip() {
    for (name, value, text) in golden("client") {
        let frame = decode_client(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(frame.message.type_name(), name);
        let again: Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(again, value, "{name} did not round-trip");
    }
}

#[test]
fn server_golden_files_round_trip() {
    let files = golden("server");
    assert_eq!(files.len(), 26, "one golden file per server message type");
    for (name, value, text) in files {
        let frame = ServerFrame::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(frame.message.type_name(), name);
        let again: Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(again, value, "{name} did not round-trip");
    }
}

#[test]
fn every_reason_a_session_can_end_with_is_spelled_as_protocol_md_says() {
    use circle_protocol::{EndReason, ServerMessage};
    for (reason, wire) in [
        (EndReason::EndedByFacilitator, "ended_by_facilitator"),
        (EndReason::EndedByAdmin, "ended_by_admin"),
        (EndReason::ServerShutdown, "server_shutdown"),
    ] {
        let message = ServerMessage::SessionEnded { reason };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["reason"], wire);
        let back: ServerMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, message);
    }
}
