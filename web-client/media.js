// Camera, microphone and the two peer connections to the server's SFU.
//
// - `publish`: we offer our microphone and camera; the server answers.
// - `subscribe`: the server offers the others' tracks; we answer. In each offer a track's
//   MediaStream id is the publishing participant's id, so `onRemoteTrack(participantId, ...)`
//   can put it in the right tile; a track whose id (`a=msid`) begins with `screen` is a shared
//   screen and goes to `screens` instead of the person's camera stream.
// - A screen share is a second video track on `publish`, announced with `set_media` first
//   (the caller does that) and then offered; stopping it removes the track and offers again.
// Media failures never throw into the app: they are reported through `onStatus` so the page can
// say so plainly while everything else (the floor, reactions, check-ins) keeps working.

import { CLIENT } from './protocol.js';

/** The camera in two simulcast layers, a quarter and the whole of the picture: the server
 *  sends each viewer the one that fits the tile it shows (`tile_sizes`). Two, because Chromium
 *  sends no more than two for a 640×360 camera (a third is never sent). A thumbnail needs no
 *  more than 15 frames a second, and a phone showing a room of them gets them cheaply. */
const CAMERA_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 100_000, maxFramerate: 15 },
  { rid: 'f', maxBitrate: 900_000 },
];

/** Shown when the relay server refuses the credentials this server handed out. */
const RELAY_REFUSED = 'Video and sound cannot get through: the media relay refused this connection. Please tell your facilitator.';

/** Ask for camera and microphone. Returns {stream, problem}: stream may lack a kind. */
export async function openLocalMedia({ audioDeviceId, videoDeviceId, audio = true, video = true } = {}) {
  if (!navigator.mediaDevices?.getUserMedia) {
    return { stream: new MediaStream(), problem: 'This browser cannot use a camera or microphone here (a secure https page is needed).' };
  }
  const audioC = audio ? (audioDeviceId ? { deviceId: { exact: audioDeviceId } } : true) : false;
  const videoC = video
    ? { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 }, ...(videoDeviceId ? { deviceId: { exact: videoDeviceId } } : {}) }
    : false;
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio: audioC, video: videoC }), problem: null };
  } catch (e) {
    // Try each kind alone so a missing camera does not also cost the microphone.
    const stream = new MediaStream();
    const problems = [];
    for (const [kind, c] of [['audio', audioC], ['video', videoC]]) {
      if (!c) continue;
      try {
        const s = await navigator.mediaDevices.getUserMedia({ [kind]: c });
        s.getTracks().forEach((t) => stream.addTrack(t));
      } catch (e2) {
        problems.push(describeMediaError(kind, e2));
      }
    }
    return { stream, problem: problems.join(' ') || null };
  }
}

function describeMediaError(kind, e) {
  const what = kind === 'audio' ? 'microphone' : 'camera';
  switch (e?.name) {
    case 'NotAllowedError': return `Your ${what} is blocked for this page. You can allow it in the browser's site settings.`;
    case 'NotFoundError': return `No ${what} was found.`;
    case 'NotReadableError': return `Your ${what} is in use by another app.`;
    default: return `Your ${what} could not be started.`;
  }
}

export async function listDevices() {
  try {
    const all = await navigator.mediaDevices.enumerateDevices();
    return {
      audio: all.filter((d) => d.kind === 'audioinput'),
      video: all.filter((d) => d.kind === 'videoinput'),
    };
  } catch {
    return { audio: [], video: [] };
  }
}

/** The `a=msid` track id the media section `mid` of `sdp` carries, if any. */
export function msidTrackOf(sdp, mid) {
  if (!sdp || mid == null) return null;
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const lines = section.split(/\r?\n/);
    if (!lines.includes(`a=mid:${mid}`)) continue;
    const msid = lines.find((l) => l.startsWith('a=msid:'));
    return msid ? msid.slice('a=msid:'.length).split(' ')[1] ?? null : null;
  }
  return null;
}

/** Ask the browser for a screen, window or tab to share. Resolves to its video track; throws
 *  the browser's error (NotAllowedError when the person cancels the picker). */
export async function captureScreen() {
  const stream = await navigator.mediaDevices.getDisplayMedia({
    video: { frameRate: { ideal: 15, max: 30 } },
    audio: false,
  });
  const track = stream.getVideoTracks()[0];
  // Slides and text: keep them sharp, and let the frame rate drop instead.
  if ('contentHint' in track) track.contentHint = 'detail';
  return track;
}

/** A microphone level meter: calls onLevel(0..1) about 15 times a second until stopped. */
export function startLevelMeter(stream, onLevel) {
  const track = stream.getAudioTracks()[0];
  if (!track || !window.AudioContext) return () => {};
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  let shown = 0;
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    const level = Math.min(1, Math.sqrt(sum / buf.length) * 4);
    shown = Math.max(level, shown * 0.8); // rise at once, fall gently: easier to read
    onLevel(shown < 0.01 ? 0 : shown);
  }, 66);
  // Browsers may start an AudioContext suspended until the person interacts with the page.
  const resume = () => ctx.resume().catch(() => {});
  resume();
  document.addEventListener('pointerdown', resume, { once: true });
  document.addEventListener('keydown', resume, { once: true });
  return () => {
    clearInterval(timer);
    document.removeEventListener('pointerdown', resume);
    document.removeEventListener('keydown', resume);
    ctx.close().catch(() => {});
  };
}

export class Media {
  /**
   * @param {object} opts
   * @param {(type: string, fields: object) => Promise} opts.request  send a request with an id
   * @param {(type: string, fields: object) => boolean} opts.send     send without an id
   * @param {(pid: string, stream: MediaStream) => void} opts.onRemoteStream
   * @param {(state: string, detail?: string) => void} opts.onStatus
   */
  constructor({ request, send, onRemoteStream, onStatus }) {
    this.request = request;
    this.send = send;
    this.onRemoteStream = onRemoteStream;
    this.onStatus = onStatus;
    this.iceServers = [];
    this.local = new MediaStream();
    this.publish = null;
    this.subscribe = null;
    this.remote = new Map(); // participant id -> MediaStream (our own collection of their tracks)
    this.screens = new Map(); // participant id -> MediaStream holding the screen they share
    this.screenTrack = null;  // the screen we share, while we do
    this.publishChain = Promise.resolve();
    this.pendingIce = { publish: [], subscribe: [] };
    this.subscribeChain = Promise.resolve();
    this.answerTimer = null;
  }

  setLocalStream(stream) { this.local = stream; }

  /** Open the publish connection and offer our tracks (and the screen we share, if any). */
  async startPublishing() {
    this.closePc('publish');
    const tracks = this.local.getTracks();
    if (tracks.length === 0 && !this.screenTrack) {
      this.onStatus('no-local', 'You are joining without camera or microphone.');
      return;
    }
    const pc = this.#newPc('publish');
    this.publish = pc;
    for (const t of tracks) {
      const init = { direction: 'sendonly', streams: [this.local] };
      if (t.kind === 'video') init.sendEncodings = CAMERA_LAYERS;
      pc.addTransceiver(t, init);
    }
    if (this.screenTrack) pc.addTransceiver(this.screenTrack, { direction: 'sendonly', streams: [this.local] });
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      this.onStatus('connecting');
      // Without an answer in 15 s the server's media side is not there: say so, keep going.
      clearTimeout(this.answerTimer);
      this.answerTimer = setTimeout(() => {
        if (this.publish === pc && !pc.currentRemoteDescription) {
          this.onStatus('unavailable', 'The server did not answer our video and sound offer.');
        }
      }, 15_000);
      await this.request(CLIENT.sdp, { pc: 'publish', sdp_type: 'offer', sdp: pc.localDescription.sdp });
    } catch (e) {
      if (this.publish !== pc) return;
      clearTimeout(this.answerTimer);
      // Stop trickling candidates the server has said it cannot use.
      this.closePc('publish');
      this.onStatus('unavailable', e?.code === 'offline' ? 'The connection dropped while starting video and sound.'
        : e?.code ? 'The server could not take our video and sound.' : 'Video and sound could not start.');
    }
  }

  /** New ICE servers (fresh TURN credentials) for the connections open now and those to come. */
  useIceServers(iceServers) {
    this.iceServers = iceServers;
    for (const pc of [this.publish, this.subscribe]) {
      try { pc?.setConfiguration({ ...pc.getConfiguration(), iceServers }); } catch { /* a closed connection */ }
    }
  }

  /**
   * Renegotiate the publish connection with new ICE credentials: after a resume (the network
   * under us may have changed) and when its ICE fails. The server answers a publish re-offer and
   * restarts the subscribe side itself (protocol/README.md, "Media recovery").
   */
  async restartPublishIce() {
    const pc = this.publish;
    if (!pc || !pc.currentRemoteDescription || pc.signalingState !== 'stable') return;
    try {
      const offer = await pc.createOffer({ iceRestart: true });
      if (this.publish !== pc) return;
      await pc.setLocalDescription(offer);
      await this.request(CLIENT.sdp, { pc: 'publish', sdp_type: 'offer', sdp: pc.localDescription.sdp });
    } catch (e) {
      // A refused restart leaves the old connection as it was; the next resume tries again.
    }
  }

  /**
   * Share `track` (already announced with `set_media`): add it to the publish connection and
   * offer again. Resolves true once the server has taken the offer; false if it refused it (the
   * offer is rolled back and the track is not kept).
   */
  async publishScreen(track) {
    this.screenTrack = track;
    if (!this.publish) {
      await this.startPublishing();
      return !!this.publish;
    }
    const pc = this.publish;
    pc.addTransceiver(track, { direction: 'sendonly', streams: [this.local] });
    const ok = await this.#renegotiatePublish(pc);
    if (!ok) {
      this.#dropScreen(pc);
      await this.#renegotiatePublish(pc);
    }
    return ok;
  }

  /** Stop sharing: end the capture, take the track off the publish connection and offer again.
   *  Whether there was a share to stop. */
  async stopScreen() {
    const track = this.screenTrack;
    if (!track) return false;
    const pc = this.publish;
    if (pc) {
      this.#dropScreen(pc);
      await this.#renegotiatePublish(pc);
    } else {
      this.screenTrack = null;
      track.stop();
    }
    return true;
  }

  #dropScreen(pc) {
    const track = this.screenTrack;
    this.screenTrack = null;
    track?.stop();
    const sender = pc.getSenders().find((snd) => snd.track === track);
    if (sender) pc.removeTrack(sender);
  }

  /** A new publish offer for what the connection now sends, one at a time. Resolves true when
   *  the server took it; a refused offer is rolled back. */
  #renegotiatePublish(pc) {
    const run = async () => {
      if (this.publish !== pc) return false;
      if (pc.signalingState !== 'stable') {
        await new Promise((resolve) => {
          const check = () => { if (pc.signalingState === 'stable' || this.publish !== pc) { pc.removeEventListener('signalingstatechange', check); resolve(); } };
          pc.addEventListener('signalingstatechange', check);
          setTimeout(() => { pc.removeEventListener('signalingstatechange', check); resolve(); }, 10_000);
        });
      }
      if (this.publish !== pc || pc.signalingState !== 'stable') return false;
      try {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        await this.request(CLIENT.sdp, { pc: 'publish', sdp_type: 'offer', sdp: pc.localDescription.sdp });
        return true;
      } catch (e) {
        if (this.publish === pc && pc.signalingState === 'have-local-offer') {
          try { await pc.setLocalDescription({ type: 'rollback' }); } catch { /* closed */ }
        }
        return false;
      }
    };
    const result = this.publishChain.then(run, run);
    this.publishChain = result.catch(() => {});
    return result;
  }

  /** Handle an `sdp` message from the server. */
  async handleSdp(msg) {
    if (msg.pc === 'publish' && msg.sdp_type === 'answer') {
      const pc = this.publish;
      if (!pc) return;
      try {
        await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        clearTimeout(this.answerTimer);
        await this.#flushIce('publish');
      } catch (e) {
        this.onStatus('unavailable', 'The server’s answer for our video and sound was not usable.');
      }
    } else if (msg.pc === 'subscribe' && msg.sdp_type === 'offer') {
      // Offers are answered strictly one after another.
      this.subscribeChain = this.subscribeChain.then(() => this.#answerSubscribe(msg.sdp)).catch(() => {});
    }
  }

  async #answerSubscribe(sdp) {
    if (!this.subscribe) this.subscribe = this.#newPc('subscribe');
    const pc = this.subscribe;
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      await this.#flushIce('subscribe');
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      this.send(CLIENT.sdp, { pc: 'subscribe', sdp_type: 'answer', sdp: pc.localDescription.sdp });
      this.#pruneRemote();
    } catch (e) {
      this.onStatus('unavailable', 'Could not receive the others’ video and sound.');
    }
  }

  /** Handle an `ice` message from the server. */
  async handleIce(msg) {
    const pc = msg.pc === 'publish' ? this.publish : this.subscribe;
    if (!pc || !pc.remoteDescription) {
      this.pendingIce[msg.pc === 'publish' ? 'publish' : 'subscribe'].push(msg.candidate);
      return;
    }
    try {
      await pc.addIceCandidate(msg.candidate ?? null);
    } catch { /* a late or malformed candidate is not fatal */ }
  }

  async #flushIce(which) {
    const pc = which === 'publish' ? this.publish : this.subscribe;
    const list = this.pendingIce[which];
    this.pendingIce[which] = [];
    for (const c of list) {
      try { await pc.addIceCandidate(c ?? null); } catch { /* ignore */ }
    }
  }

  #newPc(which) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    pc.onicecandidate = (ev) => {
      this.send(CLIENT.ice, { pc: which, candidate: ev.candidate ? ev.candidate.toJSON() : null });
    };
    // A TURN server that refuses our credentials (401, or 403 Forbidden) leaves a network that
    // blocks direct UDP with no way for media at all: say so rather than show a silent grid.
    pc.onicecandidateerror = (ev) => {
      if (!/^turns?:/.test(ev.url ?? '') || ![401, 403].includes(ev.errorCode)) return;
      this.relayRefused = true;
      if (pc.connectionState !== 'connected') this.onStatus('failed', RELAY_REFUSED);
    };
    pc.onconnectionstatechange = () => {
      if (which === 'publish' && pc === this.publish || which === 'subscribe' && pc === this.subscribe) {
        this.#reportState();
      }
    };
    if (which === 'publish') {
      pc.oniceconnectionstatechange = () => {
        if (pc === this.publish && pc.iceConnectionState === 'failed') this.restartPublishIce();
      };
    }
    if (which === 'subscribe') {
      pc.ontrack = (ev) => {
        const pid = ev.streams[0]?.id;
        if (!pid) return;
        const isScreen = !!msidTrackOf(pc.remoteDescription?.sdp, ev.transceiver?.mid)?.startsWith('screen');
        const into = isScreen ? this.screens : this.remote;
        // A recycled transceiver may carry a track that used to be someone else's, or that
        // used to be a camera and is now a screen (or the other way round).
        for (const map of [this.remote, this.screens]) {
          for (const [other, s] of map) if ((other !== pid || map !== into) && s.getTracks().includes(ev.track)) s.removeTrack(ev.track);
        }
        let stream = into.get(pid);
        if (!stream) { stream = new MediaStream(); into.set(pid, stream); }
        for (const t of stream.getTracks()) if (t.kind === ev.track.kind && t !== ev.track) stream.removeTrack(t);
        if (!stream.getTracks().includes(ev.track)) stream.addTrack(ev.track);
        ev.streams[0].onremovetrack = () => this.#pruneRemote();
        this.onRemoteStream(pid, this.remote.get(pid) ?? null);
      };
    }
    return pc;
  }

  /** Drop tracks whose transceiver the server stopped (its producer went away). */
  #pruneRemote() {
    const pc = this.subscribe;
    if (!pc) return;
    const live = new Set(pc.getTransceivers()
      .filter((t) => !t.stopped && t.currentDirection !== 'inactive' && t.receiver.track)
      .map((t) => t.receiver.track));
    for (const map of [this.remote, this.screens]) {
      for (const [pid, stream] of map) {
        for (const t of stream.getTracks()) if (!live.has(t)) stream.removeTrack(t);
        if (stream.getTracks().length === 0) map.delete(pid);
        this.onRemoteStream(pid, this.remote.get(pid) ?? null);
      }
    }
  }

  #reportState() {
    const states = [this.publish?.connectionState, this.subscribe?.connectionState].filter(Boolean);
    if (states.includes('failed')) this.onStatus('failed', this.relayRefused ? RELAY_REFUSED : 'Video and sound lost their connection.');
    else if (states.includes('connected')) this.onStatus('connected');
    else if (states.includes('disconnected')) this.onStatus('connecting', 'Video and sound are reconnecting…');
  }

  /** Replace our camera or microphone (device change in the room). */
  async replaceTrack(kind, track) {
    const old = this.local.getTracks().find((t) => t.kind === kind);
    if (old) { this.local.removeTrack(old); old.stop(); }
    if (track) this.local.addTrack(track);
    // The sender that carried the old track (a shared screen's sender is never this one).
    const senders = this.publish?.getSenders() ?? [];
    const sender = (old && senders.find((s) => s.track === old))
      ?? senders.find((s) => s.track?.kind === kind && s.track !== this.screenTrack);
    if (sender) await sender.replaceTrack(track);
  }

  setEnabled(kind, on) {
    for (const t of this.local.getTracks()) if (t.kind === kind) t.enabled = on;
  }

  closePc(which) {
    const pc = this[which];
    if (pc) {
      pc.onicecandidate = null; pc.ontrack = null; pc.onconnectionstatechange = null;
      pc.close();
    }
    this[which] = null;
    this.pendingIce[which] = [];
    if (which === 'subscribe') {
      this.screens.clear();
      for (const pid of [...this.remote.keys()]) { this.remote.delete(pid); this.onRemoteStream(pid, null); }
      this.subscribeChain = Promise.resolve();
    }
  }

  /** Tear everything down, including our camera and microphone. */
  stopAll() {
    clearTimeout(this.answerTimer);
    this.screenTrack?.stop();
    this.screenTrack = null;
    this.closePc('publish');
    this.closePc('subscribe');
    for (const t of this.local.getTracks()) t.stop();
  }
}
