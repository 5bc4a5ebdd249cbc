//! Janus (Debian's `janus` package, VideoRoom plugin) as the widely used SFU Circle is compared
//! with: its configuration, the two network namespaces joined by a veth pair that its ICE needs
//! (libnice never offers loopback candidates), and fake participants speaking its JSON API over
//! WebSocket with the same tracks, rates and stamps as the Circle participants.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use circle_protocol::PcKind;
use futures_util::{SinkExt, StreamExt};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

use super::cpu_seconds;
use super::media::{receive, send_once_connected, Metrics};
use super::scenario::{MediaOptions, MediaResult};
use circle_tests::browser::{client_opus, client_pc_at, client_vp8, local_track, ClientEvent};

const NS_JANUS: &str = "circle-bench-janus";
const NS_CLIENTS: &str = "circle-bench-clients";
const JANUS_IP: &str = "10.231.0.1";
const CLIENT_IP: &str = "10.231.0.2";
const WS_PORT: u16 = 18188;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The two namespaces and their veth pair; removed on drop (deleting a namespace deletes its
/// end of the pair, and with it the other end).
pub struct Namespaces;

impl Namespaces {
    pub fn create() -> Result<Namespaces, String> {
        // Leftovers of an interrupted run would make every step below fail.
        let _ = ip(&["netns", "del", NS_JANUS]);
        let _ = ip(&["netns", "del", NS_CLIENTS]);
        ip(&["netns", "add", NS_JANUS])?;
        let ns = Namespaces;
        ip(&["netns", "add", NS_CLIENTS])?;
        ip(&[
            "link", "add", "cbj0", "netns", NS_JANUS, "type", "veth", "peer", "name", "cbc0",
            "netns", NS_CLIENTS,
        ])?;
        for (ns_name, dev, addr) in [
            (NS_JANUS, "cbj0", JANUS_IP),
            (NS_CLIENTS, "cbc0", CLIENT_IP),
        ] {
            ip(&[
                "-n",
                ns_name,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                dev,
            ])?;
            ip(&["-n", ns_name, "link", "set", dev, "up"])?;
            ip(&["-n", ns_name, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", NS_JANUS]);
        let _ = ip(&["netns", "del", NS_CLIENTS]);
    }
}

/// A minimal configuration: VideoRoom and the WebSocket transport only, a private port range,
/// and ICE on the veth address.
pub fn write_config(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let libdir = ["/usr/lib/x86_64-linux-gnu/janus", "/usr/lib/janus"]
        .into_iter()
        .find(|d| Path::new(d).join("plugins").exists())
        .unwrap_or("/usr/lib/x86_64-linux-gnu/janus");
    let disabled_plugins: Vec<String> = std::fs::read_dir(format!("{libdir}/plugins"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".so") && !n.contains("videoroom"))
        .collect();
    let disabled_transports: Vec<String> = std::fs::read_dir(format!("{libdir}/transports"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".so") && !n.contains("websockets"))
        .collect();
    let main = format!(
        r#"general: {{
    configs_folder = "{cfg}"
    plugins_folder = "{libdir}/plugins"
    transports_folder = "{libdir}/transports"
    events_folder = "{libdir}/events"
    loggers_folder = "{libdir}/loggers"
    debug_level = 3
    admin_secret = "unused-{pid}"
}}
media: {{
    rtp_port_range = "21000-21999"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "cbj0"
    ignore_mdns = true
}}
plugins: {{
    disable = "{plugins}"
}}
transports: {{
    disable = "{transports}"
}}
events: {{
    broadcast = false
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
"#,
        cfg = dir.display(),
        pid = std::process::id(),
        plugins = disabled_plugins.join(","),
        transports = disabled_transports.join(","),
    );
    std::fs::write(dir.join("janus.jcfg"), main)?;
    std::fs::write(
        dir.join("janus.transport.websockets.jcfg"),
        format!(
            "general: {{\n    json = \"compact\"\n    ws = true\n    ws_port = {WS_PORT}\n    ws_ip = \"{JANUS_IP}\"\n    wss = false\n}}\nadmin: {{\n    admin_ws = false\n    admin_wss = false\n}}\n"
        ),
    )?;
    std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n")?;
    Ok(dir.join("janus.jcfg"))
}

/// Janus running in its namespace; killed on drop.
pub struct JanusProcess {
    child: std::process::Child,
}

impl JanusProcess {
    pub fn start(config: &Path, log: &Path) -> Result<JanusProcess, String> {
        let log = std::fs::File::create(log).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", NS_JANUS, "janus", "-C"])
            .arg(config)
            .arg("-F")
            .arg(config.parent().unwrap_or(Path::new("/tmp")))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| format!("janus: {e}"))?;
        super::register_child(child.id());
        Ok(JanusProcess { child })
    }

    /// `ip netns exec` replaces itself with janus, so this is janus's own pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for JanusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the Janus comparison: namespaces, Janus, and the fake participants as a child process
/// inside the clients' namespace (this process stays where Circle runs).
pub async fn compare(opts: &MediaOptions, out: &Path) -> Result<MediaResult, String> {
    if Command::new("janus").arg("--version").output().is_err() {
        return Err("the janus binary is not installed (apt-get install janus)".into());
    }
    let dir = std::env::temp_dir().join(format!("circle-bench-janus-{}", std::process::id()));
    let config = write_config(&dir).map_err(|e| format!("janus config: {e}"))?;
    let _ns = Namespaces::create()?;
    let janus = JanusProcess::start(&config, &out.with_extension("janus.log"))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = tokio::process::Command::new("ip")
        .args(["netns", "exec", NS_CLIENTS])
        .arg(exe)
        .args([
            "janus-clients",
            "--rooms",
            &opts.rooms.to_string(),
            "--room-size",
            &opts.room_size.to_string(),
            "--window",
            &opts.window.as_secs().to_string(),
            "--janus-pid",
            &janus.pid().to_string(),
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), output)
        .await
        .map_err(|_| "the Janus clients did not finish in 180 s".to_owned())?
        .map_err(|e| e.to_string())?;
    drop(janus);
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("JANUS_RESULT "))
        .ok_or_else(|| {
            format!(
                "no result from the Janus clients: {}",
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )
        })?;
    let f: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 10 {
        return Err(format!("malformed result: {line}"));
    }
    Ok(MediaResult {
        participants: opts.rooms * opts.room_size,
        connected: f[0] > 0.0,
        sent: f[1] as u64,
        expected: f[2] as u64,
        delivered: f[3] as u64,
        p50_ms: f[4],
        p99_ms: f[5],
        max_ms: f[6],
        server_cpu: f[7],
        tool_cpu: f[8],
        window_seconds: f[9],
        ..Default::default()
    })
}

/// One WebSocket to Janus: requests matched to replies by transaction.
#[derive(Clone)]
struct Api {
    tx: mpsc::Sender<String>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    next: Arc<AtomicU64>,
}

impl Api {
    async fn connect(url: &str) -> Result<Api, String> {
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "janus-protocol".parse().expect("valid header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| format!("connect to janus: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::channel::<String>(256);
        tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let pending: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>> = Arc::default();
        let p = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Ok(text) = frame.to_text() else { continue };
                let Ok(m) = serde_json::from_str::<Value>(text) else {
                    continue;
                };
                if m["janus"] == "ack" {
                    continue;
                }
                if let Some(t) = m["transaction"].as_str() {
                    if let Some(reply) = p.lock().unwrap().remove(t) {
                        let _ = reply.send(m);
                    }
                }
            }
        });
        Ok(Api {
            tx,
            pending,
            next: Arc::new(AtomicU64::new(1)),
        })
    }

    async fn call(&self, mut message: Value) -> Result<Value, String> {
        let t = format!("t{}", self.next.fetch_add(1, Ordering::Relaxed));
        message["transaction"] = json!(t);
        let (reply_tx, reply) = oneshot::channel();
        self.pending.lock().unwrap().insert(t, reply_tx);
        self.tx
            .send(message.to_string())
            .await
            .map_err(|_| "janus socket closed".to_owned())?;
        let reply = tokio::time::timeout(Duration::from_secs(20), reply)
            .await
            .map_err(|_| format!("janus did not answer {message}"))?
            .map_err(|_| "janus socket closed".to_owned())?;
        if reply["janus"] == "error" || reply["plugindata"]["data"]["error"].is_string() {
            return Err(format!("janus refused: {reply}"));
        }
        Ok(reply)
    }

    fn send(&self, mut message: Value) {
        message["transaction"] = json!(format!("n{}", self.next.fetch_add(1, Ordering::Relaxed)));
        let _ = self.tx.try_send(message.to_string());
    }
}

async fn session(api: &Api) -> Result<u64, String> {
    let r = api.call(json!({"janus":"create"})).await?;
    let s = r["data"]["id"].as_u64().ok_or("no session id")?;
    let keepalive = api.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(20)).await;
            if keepalive.tx.is_closed() {
                break;
            }
            keepalive.send(json!({"janus":"keepalive","session_id": s}));
        }
    });
    Ok(s)
}

async fn attach(api: &Api, s: u64) -> Result<u64, String> {
    let r = api
        .call(json!({"janus":"attach","session_id": s,"plugin":"janus.plugin.videoroom"}))
        .await?;
    r["data"]["id"]
        .as_u64()
        .ok_or_else(|| "no handle id".into())
}

/// Where one peer connection's events go.
struct PcDriver {
    api: Api,
    session: u64,
    handle: u64,
    subscriber: u32,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

/// Forwards one peer connection's candidates to its Janus handle, its tracks to the counters.
fn drive_pc(d: PcDriver, mut events: mpsc::Receiver<ClientEvent>, connected: watch::Sender<bool>) {
    let PcDriver {
        api,
        session: s,
        handle: h,
        subscriber,
        metrics,
        stop,
    } = d;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                ClientEvent::Candidate(_, init) => api.send(json!({
                    "janus":"trickle","session_id": s,"handle_id": h,
                    "candidate": {"candidate": init.candidate, "sdpMid": "0", "sdpMLineIndex": 0}
                })),
                ClientEvent::State(_, state) => {
                    let _ = connected.send(state == RTCPeerConnectionState::Connected);
                }
                ClientEvent::Track(track) => {
                    tokio::spawn(receive(track, subscriber, metrics.clone(), stop.clone()));
                }
            }
        }
    });
}

struct JanusParticipant {
    pcs: Vec<Arc<dyn PeerConnection>>,
    connected: watch::Receiver<bool>,
    api: Api,
    session: u64,
    feed: u64,
}

async fn publish(
    url: &str,
    room: u64,
    index: u32,
    subscribers: u64,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<JanusParticipant, String> {
    let api = Api::connect(url).await?;
    let s = session(&api).await?;
    let h = attach(&api, s).await?;
    let (events_tx, events) = mpsc::channel(1024);
    let pc = client_pc_at(PcKind::Publish, events_tx, &format!("{CLIENT_IP}:0")).await;
    let id = format!("j{index}");
    let audio = local_track(&id, RtpCodecKind::Audio, client_opus(), 0x1000_0000 | index);
    let video = local_track(&id, RtpCodecKind::Video, client_vp8(), 0x2000_0000 | index);
    pc.add_track(audio.clone() as Arc<dyn TrackLocal>)
        .await
        .map_err(|e| e.to_string())?;
    pc.add_track(video.clone() as Arc<dyn TrackLocal>)
        .await
        .map_err(|e| e.to_string())?;
    let (connected_tx, connected) = watch::channel(false);
    drive_pc(
        PcDriver {
            api: api.clone(),
            session: s,
            handle: h,
            subscriber: index,
            metrics: metrics.clone(),
            stop: stop.clone(),
        },
        events,
        connected_tx,
    );
    let offer = pc.create_offer(None).await.map_err(|e| e.to_string())?;
    pc.set_local_description(offer)
        .await
        .map_err(|e| e.to_string())?;
    let sdp = pc.local_description().await.ok_or("no offer")?.sdp;
    let feed = u64::from(index) + 1;
    let r = api
        .call(json!({"janus":"message","session_id": s,"handle_id": h,
            "body": {"request":"joinandconfigure","ptype":"publisher","room": room,"id": feed,
                     "display": id,"audio": true,"video": true},
            "jsep": {"type":"offer","sdp": sdp}}))
        .await?;
    let answer = r["jsep"]["sdp"].as_str().ok_or("no answer from janus")?;
    pc.set_remote_description(
        RTCSessionDescription::answer(answer.to_owned()).map_err(|e| e.to_string())?,
    )
    .await
    .map_err(|e| e.to_string())?;
    send_once_connected(
        audio,
        video,
        index,
        connected.clone(),
        stop.clone(),
        metrics.clone(),
        Arc::new(AtomicU64::new(subscribers)),
    );
    Ok(JanusParticipant {
        pcs: vec![pc],
        connected,
        api,
        session: s,
        feed,
    })
}

async fn subscribe(
    p: &mut JanusParticipant,
    room: u64,
    feeds: &[u64],
    index: u32,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<(), String> {
    let h = attach(&p.api, p.session).await?;
    let (events_tx, events) = mpsc::channel(1024);
    let pc = client_pc_at(PcKind::Subscribe, events_tx, &format!("{CLIENT_IP}:0")).await;
    let (connected_tx, _connected) = watch::channel(false);
    drive_pc(
        PcDriver {
            api: p.api.clone(),
            session: p.session,
            handle: h,
            subscriber: index,
            metrics,
            stop,
        },
        events,
        connected_tx,
    );
    let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
    let r = p
        .api
        .call(
            json!({"janus":"message","session_id": p.session,"handle_id": h,
            "body": {"request":"join","ptype":"subscriber","room": room,"streams": streams}}),
        )
        .await?;
    let offer = r["jsep"]["sdp"].as_str().ok_or("no offer from janus")?;
    pc.set_remote_description(
        RTCSessionDescription::offer(offer.to_owned()).map_err(|e| e.to_string())?,
    )
    .await
    .map_err(|e| e.to_string())?;
    let answer = pc.create_answer(None).await.map_err(|e| e.to_string())?;
    pc.set_local_description(answer)
        .await
        .map_err(|e| e.to_string())?;
    let sdp = pc.local_description().await.ok_or("no answer")?.sdp;
    p.api
        .call(
            json!({"janus":"message","session_id": p.session,"handle_id": h,
            "body": {"request":"start"},"jsep": {"type":"answer","sdp": sdp}}),
        )
        .await?;
    p.pcs.push(pc);
    Ok(())
}

/// The clients' side, run inside the clients' namespace: prints one `JANUS_RESULT` line.
pub async fn clients(rooms: usize, room_size: usize, window: Duration, janus_pid: u32) {
    let url = format!("ws://{JANUS_IP}:{WS_PORT}/");
    let metrics = Arc::new(Metrics::default());
    let stop = CancellationToken::new();
    // Janus takes a moment to open its port.
    let mut admin = None;
    for _ in 0..50 {
        if let Ok(a) = Api::connect(&url).await {
            admin = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let Some(admin) = admin else {
        eprintln!("janus did not open its WebSocket port");
        return;
    };
    let result = async {
        let s = session(&admin).await?;
        let h = attach(&admin, s).await?;
        for r in 0..rooms {
            admin
                .call(json!({"janus":"message","session_id": s,"handle_id": h,
                    "body": {"request":"create","room": 5000 + r as u64,"publishers": room_size,
                             "audiocodec":"opus","videocodec":"vp8","bitrate": 0,
                             "fir_freq": 0,"notify_joining": false}}))
                .await?;
        }
        let mut all = Vec::new();
        for r in 0..rooms {
            let mut room = Vec::new();
            for i in 0..room_size {
                let index = (r * room_size + i) as u32;
                room.push(
                    publish(
                        &url,
                        5000 + r as u64,
                        index,
                        room_size as u64 - 1,
                        metrics.clone(),
                        stop.clone(),
                    )
                    .await?,
                );
            }
            all.push(room);
        }
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until && !all.iter().flatten().all(|p| *p.connected.borrow()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (r, room) in all.iter_mut().enumerate() {
            let feeds: Vec<u64> = room.iter().map(|p| p.feed).collect();
            for (i, p) in room.iter_mut().enumerate() {
                let others: Vec<u64> = feeds.iter().copied().filter(|f| *f != feeds[i]).collect();
                let index = (r * room_size + i) as u32;
                subscribe(
                    p,
                    5000 + r as u64,
                    &others,
                    index,
                    metrics.clone(),
                    stop.clone(),
                )
                .await?;
            }
        }
        let pairs = rooms * room_size * (room_size - 1);
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until && metrics.first_video.lock().unwrap().len() < pairs {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let connected = metrics.first_video.lock().unwrap().len() >= pairs;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu0 = cpu_seconds(janus_pid);
        let tool0 = cpu_seconds(std::process::id());
        let t0 = Instant::now();
        metrics.open_window();
        tokio::time::sleep(window).await;
        metrics.close_window();
        let cpu1 = cpu_seconds(janus_pid);
        let tool1 = cpu_seconds(std::process::id());
        let w = t0.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "JANUS_RESULT {} {} {} {} {} {} {} {} {} {}",
            u8::from(connected),
            metrics.all_sent(),
            metrics.all_expected(),
            metrics.all_received(),
            metrics.latency.quantile_ms(0.5),
            metrics.latency.quantile_ms(0.99),
            metrics.latency.max_ms(),
            cpu1 - cpu0,
            tool1 - tool0,
            w
        );
        stop.cancel();
        for p in all.into_iter().flatten() {
            for pc in p.pcs {
                let _ = pc.close().await;
            }
        }
        Ok::<(), String>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("janus clients: {e}");
    }
}
