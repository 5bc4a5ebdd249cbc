//! What the Router refuses synchronously, before any peer connection work.

use circle_protocol::{ParticipantId, PcKind, SdpType};
use circle_server::media::{Media, MediaConfig, MediaError, Signal};
use tokio::sync::mpsc;

fn sdp(pc: PcKind, sdp_type: SdpType, sdp: &str) -> Signal {
    Signal::Sdp {
        pc,
        sdp_type,
        sdp: sdp.to_owned(),
    }
}

const ONE_AUDIO_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n\
    a=ice-ufrag:Xb3+\r\na=ice-pwd:0123456789abcdefghij+/\r\na=rtpmap:111 opus/48000/2\r\n";

#[tokio::test]
async fn signals_from_unknown_participants_are_not_found() {
    let media = Media::new(MediaConfig::default()).unwrap();
    let (tx, _rx) = mpsc::channel(16);
    let mut router = media.router(tx);
    let err = router
        .on_signal(
            &ParticipantId::from("nobody"),
            sdp(PcKind::Publish, SdpType::Offer, ONE_AUDIO_OFFER),
        )
        .unwrap_err();
    assert!(matches!(err, MediaError::NotFound), "{err}");
}

#[tokio::test]
async fn an_observer_may_not_publish() {
    let media = Media::new(MediaConfig::default()).unwrap();
    let (tx, _rx) = mpsc::channel(16);
    let mut router = media.router(tx);
    let watcher = ParticipantId::from("watcher");
    router.add_participant(watcher.clone(), false);
    let err = router
        .on_signal(
            &watcher,
            sdp(PcKind::Publish, SdpType::Offer, ONE_AUDIO_OFFER),
        )
        .unwrap_err();
    assert!(matches!(err, MediaError::Forbidden(_)), "{err}");
    let err = router
        .on_signal(
            &watcher,
            Signal::Ice {
                pc: PcKind::Publish,
                candidate: None,
            },
        )
        .unwrap_err();
    assert!(matches!(err, MediaError::Forbidden(_)), "{err}");
}

#[tokio::test]
async fn descriptions_in_the_wrong_direction_or_out_of_turn_are_conflicts() {
    let media = Media::new(MediaConfig::default()).unwrap();
    let (tx, _rx) = mpsc::channel(16);
    let mut router = media.router(tx);
    let member = ParticipantId::from("member");
    router.add_participant(member.clone(), true);

    let answer_on_publish = sdp(PcKind::Publish, SdpType::Answer, ONE_AUDIO_OFFER);
    let offer_on_subscribe = sdp(PcKind::Subscribe, SdpType::Offer, ONE_AUDIO_OFFER);
    let unsolicited_answer = sdp(PcKind::Subscribe, SdpType::Answer, ONE_AUDIO_OFFER);
    for signal in [answer_on_publish, offer_on_subscribe, unsolicited_answer] {
        let err = router.on_signal(&member, signal).unwrap_err();
        assert!(matches!(err, MediaError::Conflict(_)), "{err}");
    }
}

#[tokio::test]
async fn unparsable_offers_and_offers_with_two_microphones_are_bad_sdp() {
    let media = Media::new(MediaConfig::default()).unwrap();
    let (tx, _rx) = mpsc::channel(16);
    let mut router = media.router(tx);
    let member = ParticipantId::from("member");
    router.add_participant(member.clone(), true);

    let two_mics = format!("{ONE_AUDIO_OFFER}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n");
    for text in ["this is not sdp", two_mics.as_str()] {
        let err = router
            .on_signal(&member, sdp(PcKind::Publish, SdpType::Offer, text))
            .unwrap_err();
        assert!(matches!(err, MediaError::BadSdp(_)), "{err}");
    }
    // A well-formed offer is accepted for asynchronous work.
    router
        .on_signal(
            &member,
            sdp(PcKind::Publish, SdpType::Offer, ONE_AUDIO_OFFER),
        )
        .unwrap();
}

#[tokio::test]
async fn offers_with_an_oversized_ufrag_or_too_many_sections_are_bad_sdp() {
    let media = Media::new(MediaConfig::default()).unwrap();
    let (tx, _rx) = mpsc::channel(16);
    let mut router = media.router(tx);
    let member = ParticipantId::from("member");
    router.add_participant(member.clone(), true);

    let no_ufrag = ONE_AUDIO_OFFER.replace("a=ice-ufrag:Xb3+\r\n", "");
    let long_ufrag = ONE_AUDIO_OFFER.replace("Xb3+", &"u".repeat(250));
    let inactive = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=inactive\r\n";
    let many_sections = format!("{ONE_AUDIO_OFFER}{}", inactive.repeat(16));
    for text in [no_ufrag, long_ufrag, many_sections] {
        let err = router
            .on_signal(&member, sdp(PcKind::Publish, SdpType::Offer, &text))
            .unwrap_err();
        assert!(matches!(err, MediaError::BadSdp(_)), "{err}");
    }
}

#[tokio::test]
async fn a_closed_router_refuses_signals() {
    let media = Media::new(MediaConfig::default()).unwrap();
    let (tx, _rx) = mpsc::channel(16);
    let mut router = media.router(tx);
    let member = ParticipantId::from("member");
    router.add_participant(member.clone(), true);
    router.close();
    let err = router
        .on_signal(
            &member,
            Signal::Ice {
                pc: PcKind::Subscribe,
                candidate: None,
            },
        )
        .unwrap_err();
    assert!(matches!(err, MediaError::Internal(_)), "{err}");
}

#[test]
fn unusable_configurations_are_refused() {
    let inverted = MediaConfig {
        udp_ports: Some((50010, 50000)),
        ..MediaConfig::default()
    };
    assert!(matches!(Media::new(inverted), Err(MediaError::Config(_))));
    let wildcard = MediaConfig {
        bind_ip: "0.0.0.0".parse().unwrap(),
        ..MediaConfig::default()
    };
    assert!(matches!(Media::new(wildcard), Err(MediaError::Config(_))));
}
