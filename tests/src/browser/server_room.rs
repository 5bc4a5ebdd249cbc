//! A room on the real server, reached over WebSocket: each browser that joins opens its own
//! session with its token (and can drop it, resume it, or send any message on it), the server's
//! `sdp`/`ice` become the browser's router events, and every message received is logged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use circle_protocol::ParticipantId;
use circle_server::media::{RouterEvent, Signal};
use tokio::sync::mpsc;

use super::{init_tracing, within, BrowserCommand, Command, Room, RoomLink, Speaking};

/// What only a room on the real server does.
enum OverServer {
    /// Any protocol message, sent on that participant's session.
    Send(ParticipantId, serde_json::Value),
    /// Drop the participant's socket without a close frame.
    DropSession(ParticipantId),
    /// Reconnect with `resume`.
    Resume(ParticipantId),
}

/// A room on the real server; the room's rules decide the gate.
#[derive(Clone)]
pub struct ServerRoom {
    commands: mpsc::Sender<Command<OverServer>>,
    speaking: Speaking,
    /// Every message each participant's session received.
    pub messages: Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>>,
}

impl Room for ServerRoom {
    fn link(&self) -> RoomLink {
        RoomLink::new(self.commands.clone())
    }
}

impl ServerRoom {
    /// A room on the real server: each browser that joins opens its own WebSocket session with
    /// a token for the role given here (members by default), and negotiates over it. `speaking`
    /// events are taken from the facilitators' sessions, which see every speaker.
    pub fn over_server(
        server: &crate::TestServer,
        room: &str,
        roles: &[(&str, crate::Role)],
    ) -> ServerRoom {
        let tokens = roles
            .iter()
            .map(|(id, r)| (id.to_string(), (server.token(room, id, *r), *r)))
            .collect();
        ServerRoom::over_url(server.url(), tokens)
    }

    /// A room on a server reached at `url` (`ws://…/ws`), with each participant's join token
    /// and role given: for a server running as its own process.
    pub fn over_url(url: String, tokens: BTreeMap<String, (String, crate::Role)>) -> ServerRoom {
        let urls = tokens.keys().map(|id| (id.clone(), url.clone())).collect();
        ServerRoom::over_urls(urls, tokens)
    }

    /// A room whose participants each connect to their own address (`ws://…/ws`): the nodes of
    /// a cluster, say.
    pub fn over_urls(
        urls: BTreeMap<String, String>,
        tokens: BTreeMap<String, (String, crate::Role)>,
    ) -> ServerRoom {
        init_tracing();
        let (commands, mut command_rx) = mpsc::channel::<Command<OverServer>>(1024);
        let (speaking_tx, speaking_rx) = mpsc::channel(64);
        let messages: Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>> = Arc::default();
        let log = messages.clone();
        tokio::spawn(async move {
            let mut sessions: BTreeMap<ParticipantId, Session> = BTreeMap::new();
            while let Some(command) = command_rx.recv().await {
                match command {
                    Command::Browser(BrowserCommand::Add(id, _, inbox)) => {
                        let (token, role) = tokens
                            .get(id.as_str())
                            .unwrap_or_else(|| panic!("no role given for {id}"))
                            .clone();
                        let facilitator = role == crate::Role::Facilitator;
                        let hello = serde_json::json!({"type":"hello","protocol":1,"token": token});
                        let session = open_session(
                            &urls[id.as_str()],
                            hello,
                            id.clone(),
                            inbox,
                            facilitator.then(|| speaking_tx.clone()),
                            log.clone(),
                        )
                        .await;
                        sessions.insert(id, session);
                    }
                    Command::Browser(BrowserCommand::Signal(id, signal)) => {
                        let message = match signal {
                            Signal::Sdp { pc, sdp_type, sdp } => {
                                serde_json::json!({"type":"sdp","pc": pc,"sdp_type": sdp_type,"sdp": sdp})
                            }
                            Signal::Ice { pc, candidate } => {
                                serde_json::json!({"type":"ice","pc": pc,"candidate": candidate})
                            }
                        };
                        if let Some(s) = sessions.get(&id) {
                            let _ = s.writer.send(message.to_string()).await;
                        }
                    }
                    Command::Own(OverServer::Send(id, message)) => {
                        let s = sessions
                            .get(&id)
                            .unwrap_or_else(|| panic!("{id} has no session"));
                        s.writer
                            .send(message.to_string())
                            .await
                            .expect("session open");
                    }
                    Command::Own(OverServer::DropSession(id)) => {
                        if let Some(s) = sessions.get(&id) {
                            s.kill.cancel();
                        }
                    }
                    Command::Own(OverServer::Resume(id)) => {
                        let old = sessions
                            .remove(&id)
                            .unwrap_or_else(|| panic!("{id} has no session to resume"));
                        old.kill.cancel();
                        let last_seq = log
                            .lock()
                            .unwrap()
                            .get(id.as_str())
                            .and_then(|ms| ms.iter().filter_map(|m| m["seq"].as_u64()).max())
                            .unwrap_or(0);
                        let resume = serde_json::json!({
                            "type":"resume","protocol":1,
                            "resume_token": old.resume_token,"last_seq": last_seq
                        });
                        let session = open_session(
                            &urls[id.as_str()],
                            resume,
                            id.clone(),
                            old.inbox,
                            old.speaking,
                            log.clone(),
                        )
                        .await;
                        sessions.insert(id, session);
                    }
                    Command::Browser(BrowserCommand::Remove(id)) => {
                        if let Some(s) = sessions.remove(&id) {
                            let _ = s.writer.send(r#"{"type":"leave"}"#.to_owned()).await;
                        }
                    }
                }
            }
        });
        ServerRoom {
            commands,
            speaking: Speaking::new(speaking_rx),
            messages,
        }
    }

    /// drops `id`'s WebSocket without a close frame, as a lost network
    /// would. Their peer connections stay up.
    pub async fn drop_session(&self, id: &str) {
        self.command(OverServer::DropSession(id.into())).await;
    }

    /// opens a new WebSocket for `id` and sends `resume` with their token
    /// and the last `seq` they saw (dropping the old socket first if it is still open).
    pub async fn resume_session(&self, id: &str) {
        self.command(OverServer::Resume(id.into())).await;
    }

    /// sends a protocol message on `id`'s session.
    pub async fn send_as(&self, id: &str, message: serde_json::Value) {
        self.command(OverServer::Send(id.into(), message)).await;
    }

    /// waits until `id`'s session has received a message that satisfies
    /// `check`, and returns it.
    pub async fn wait_message(
        &self,
        id: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        within("a message from the server", async {
            loop {
                if let Some(m) = self
                    .messages
                    .lock()
                    .unwrap()
                    .get(id)
                    .and_then(|ms| ms.iter().find(|m| check(m)).cloned())
                {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    async fn command(&self, command: OverServer) {
        self.commands
            .send(Command::Own(command))
            .await
            .expect("room task alive");
    }

    /// Sends `leave` on `id`'s session and forgets it.
    pub async fn remove(&self, id: &str) {
        self.link().command(BrowserCommand::Remove(id.into())).await;
    }

    /// Waits for a `speaking` event (as the facilitators see them) that satisfies `check`.
    pub async fn speaking_until(
        &self,
        check: impl Fn(&[ParticipantId]) -> bool,
    ) -> Vec<ParticipantId> {
        self.speaking.until(check).await
    }
}

/// One participant's WebSocket session to the real server.
struct Session {
    writer: mpsc::Sender<String>,
    /// Cancelled to drop the socket at once, without a close frame.
    kill: tokio_util::sync::CancellationToken,
    resume_token: String,
    inbox: mpsc::Sender<RouterEvent>,
    speaking: Option<mpsc::Sender<Vec<ParticipantId>>>,
}

/// Opens one participant's WebSocket session with `first` (`hello` or `resume`) and bridges
/// it: the server's `sdp`/`ice` (and errors) become router events in the browser's inbox,
/// `speaking` goes to the room's speaking channel when given, and every message is logged.
/// After `hello` it waits for `welcome`.
async fn open_session(
    url: &str,
    first: serde_json::Value,
    id: ParticipantId,
    inbox: mpsc::Sender<RouterEvent>,
    speaking: Option<mpsc::Sender<Vec<ParticipantId>>>,
    log: Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>>,
) -> Session {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (ws, _) = within(
        "a WebSocket connection",
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("connect");
    let (mut sink, mut stream) = ws.split();
    let is_hello = first["type"] == "hello";
    sink.send(Message::text(first.to_string())).await.unwrap();
    let resume_token;
    if is_hello {
        let welcome = within("welcome", stream.next()).await.unwrap().unwrap();
        let welcome: serde_json::Value = serde_json::from_str(welcome.to_text().unwrap()).unwrap();
        assert_eq!(
            welcome["type"], "welcome",
            "{id} was not admitted: {welcome}"
        );
        resume_token = welcome["resume_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        log.lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .push(welcome);
    } else {
        resume_token = first["resume_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    let kill = tokio_util::sync::CancellationToken::new();
    let (tx, mut rx) = mpsc::channel::<String>(1024);
    let (sink_done_tx, sink_done) = tokio::sync::oneshot::channel::<()>();
    {
        let kill = kill.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = kill.cancelled() => break,
                    text = rx.recv() => {
                        let Some(text) = text else { break };
                        if sink.send(Message::text(text)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            // Dropped, not closed: the reader's half goes with it, and the socket with both.
            let _ = sink_done_tx.send(());
            drop(sink);
        });
    }
    {
        let kill = kill.clone();
        let inbox = inbox.clone();
        let speaking = speaking.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    () = kill.cancelled() => break,
                    frame = stream.next() => frame,
                };
                let Some(Ok(frame)) = frame else { break };
                let Ok(text) = frame.to_text() else { continue };
                let Ok(m) = serde_json::from_str::<serde_json::Value>(text) else {
                    continue;
                };
                log.lock()
                    .unwrap()
                    .entry(id.to_string())
                    .or_default()
                    .push(m.clone());
                let event = match m["type"].as_str() {
                    Some("sdp") => Some(RouterEvent::Signal {
                        to: id.clone(),
                        epoch: 0,
                        signal: Signal::Sdp {
                            pc: serde_json::from_value(m["pc"].clone()).unwrap(),
                            sdp_type: serde_json::from_value(m["sdp_type"].clone()).unwrap(),
                            sdp: m["sdp"].as_str().unwrap().to_owned(),
                        },
                    }),
                    Some("ice") => Some(RouterEvent::Signal {
                        to: id.clone(),
                        epoch: 0,
                        signal: Signal::Ice {
                            pc: serde_json::from_value(m["pc"].clone()).unwrap(),
                            candidate: serde_json::from_value(m["candidate"].clone()).unwrap(),
                        },
                    }),
                    Some("error") => Some(RouterEvent::Error {
                        to: id.clone(),
                        message: m.to_string(),
                    }),
                    Some("speaking") => {
                        if let Some(speaking) = &speaking {
                            let set = serde_json::from_value(m["participants"].clone()).unwrap();
                            let _ = speaking.try_send(set);
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(event) = event {
                    if inbox.send(event).await.is_err() {
                        break;
                    }
                }
            }
            kill.cancel();
            // Both halves must be gone for the socket to close.
            let _ = sink_done.await;
            drop(stream);
        });
    }
    Session {
        writer: tx,
        kill,
        resume_token,
        inbox,
        speaking,
    }
}
