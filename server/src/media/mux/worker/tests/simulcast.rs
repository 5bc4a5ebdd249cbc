//! The worker's simulcast: the layer each subscriber's tile and connection call for, moved
//! between only at keyframes.

use std::collections::BTreeSet;
use std::time::Instant;

use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::sansio::Protocol;

use super::*;

/// One frame on both test layers, `first` sent first: `f` numbered `seq`, `q` 1000 + `seq`.
fn both_layers(a: &mut Peer, first: &str, seq: u16, keyframe: bool) {
    let second = if first == "f" { "q" } else { "f" };
    for rid in [first, second] {
        let seq = if rid == "q" { 1000 + seq } else { seq };
        a.layer_frame(rid, seq, keyframe);
    }
}

/// Everything `peer` received is one unbroken run of sequence numbers, `across` a layer move.
fn assert_unbroken(peer: &Peer, across: &str) {
    let seqs: Vec<u16> = peer
        .received
        .iter()
        .map(|p| p.header.sequence_number)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "one unbroken sequence across {across}: {seqs:?}"
    );
}

/// The widths of the VP8 keyframes a peer received, in order (160 or 640 for the test layers).
fn keyframe_widths(peer: &Peer) -> Vec<u16> {
    peer.received
        .iter()
        .filter_map(|p| crate::media::simulcast::vp8_keyframe_size(&p.payload))
        .map(|s| s.width)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_the_simulcast_layer_its_tile_needs_and_moves_at_a_keyframe() {
    let (worker, mut reports, mut a, mut b, mut seen) =
        viewer_of(Peer::with_simulcast_camera().await).await;

    // Both layers, each starting with a keyframe; the subscriber said no size: the largest.
    // (Had `q`'s keyframe come first, the subscriber would start on it, the only layer of
    // known size, and move up at `f`'s.)
    let mut seq = 1;
    for keyframe in [true, false, false] {
        both_layers(&mut a, "f", seq, keyframe);
        seq += 1;
    }
    run_both(&mut a, &mut b, 4, &mut reports, &mut seen).await;
    assert_eq!(
        keyframe_widths(&b),
        vec![640],
        "one layer only, the large one"
    );
    let first = b.received.len();
    assert!(first >= 2, "{first} packets");
    assert_eq!(
        b.received
            .iter()
            .map(|p| p.header.ssrc)
            .collect::<BTreeSet<_>>()
            .len(),
        1,
        "one SSRC whatever the layer"
    );

    // A small tile: the subscriber moves to `q` at its next keyframe, not before.
    worker
        .send(Command::TileSizes {
            key: 2,
            sizes: vec![(1, 90)],
        })
        .await
        .unwrap();
    both_layers(&mut a, "q", seq, false);
    seq += 1;
    run_both(&mut a, &mut b, 2, &mut reports, &mut seen).await;
    assert_eq!(
        keyframe_widths(&b),
        vec![640],
        "still the large layer until q's keyframe"
    );
    for keyframe in [true, false] {
        both_layers(&mut a, "q", seq, keyframe);
        seq += 1;
    }
    run_both(&mut a, &mut b, 4, &mut reports, &mut seen).await;
    assert_eq!(keyframe_widths(&b), vec![640, 160]);
    assert_unbroken(&b, "the move");
    let after = &b.received[first..];
    assert!(
        after
            .iter()
            .all(|p| p.header.timestamp >= b.received[first - 1].header.timestamp),
        "the clock never goes back"
    );

    // Hidden: nothing more at all.
    worker
        .send(Command::TileSizes {
            key: 2,
            sizes: vec![(1, 0)],
        })
        .await
        .unwrap();
    // What was sent before the tile was hidden may still be on its way: let it land first.
    run_both(&mut a, &mut b, 4, &mut reports, &mut seen).await;
    let before = b.received.len();
    for keyframe in [true, false] {
        both_layers(&mut a, "q", seq, keyframe);
        seq += 1;
    }
    run_both(&mut a, &mut b, 4, &mut reports, &mut seen).await;
    assert_eq!(b.received.len(), before, "a hidden tile costs no video");
}

/// `peer`'s receiver report: every track it receives lost `fraction_lost` (256ths).
fn send_receiver_report(peer: &mut Peer, fraction_lost: u8) {
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::rtcp::reception_report::ReceptionReport;
    let ssrcs: BTreeSet<u32> = peer.received.iter().map(|p| p.header.ssrc).collect();
    let report = ReceiverReport {
        ssrc: 1,
        reports: ssrcs
            .into_iter()
            .map(|ssrc| ReceptionReport {
                ssrc,
                fraction_lost,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    peer.pc
        .handle_write(TaggedRTCMessage {
            now: Instant::now(),
            message: RTCMessage::RtcpPacket(String::new(), vec![Box::new(report)]),
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_whose_reports_show_heavy_loss_moves_to_the_smaller_layer_at_its_keyframe() {
    let (_worker, mut reports, mut a, mut b, mut seen) =
        viewer_of(Peer::with_simulcast_camera().await).await;
    let mut seq = 1;
    let mut frames = |a: &mut Peer, keyframe: bool| {
        both_layers(a, "f", seq, keyframe);
        seq += 1;
    };
    frames(&mut a, true);
    frames(&mut a, false);
    run_both(&mut a, &mut b, 4, &mut reports, &mut seen).await;
    assert_eq!(keyframe_widths(&b), vec![640], "a large tile's layer");

    // A clean report changes nothing.
    send_receiver_report(&mut b, 0);
    run_both(&mut a, &mut b, 2, &mut reports, &mut seen).await;
    frames(&mut a, true);
    run_both(&mut a, &mut b, 4, &mut reports, &mut seen).await;
    assert_eq!(keyframe_widths(&b), vec![640, 640]);

    // A fifth of its packets lost: the smaller layer from its next keyframe, whatever the
    // tile wants.
    send_receiver_report(&mut b, 51);
    run_both(&mut a, &mut b, 2, &mut reports, &mut seen).await;
    frames(&mut a, false);
    frames(&mut a, true);
    frames(&mut a, false);
    run_both(&mut a, &mut b, 4, &mut reports, &mut seen).await;
    assert_eq!(
        keyframe_widths(&b),
        vec![640, 640, 640, 160],
        "f's keyframe, sent just before q's, still went out: the move waits for q's"
    );
    assert_unbroken(&b, "the step down");
}
