// The WebSocket session with the server: hello, resume with backoff, request ids and seq.
//
// One Connection lives for one participant's stay in a room. It opens a socket, sends `hello`
// (or `resume` once it has a resume token), hands every server message to `onMessage`, and when
// the socket drops unexpectedly it reconnects by itself with jittered exponential backoff.
// It never logs names or tokens.

import { CLIENT, SERVER } from './protocol.js';

export const PROTOCOL = 1;

// Close codes after which reconnecting would be wrong (see protocol.md, "Close codes").
const FINAL_CLOSE = new Map([
  [1000, 'left'],
  [1008, 'policy'],
  [4001, 'removed'],
  [4002, 'replaced'],
  [4003, 'denied'],
  [4004, 'ended'],
]);

/** Delay before reconnect attempt `attempt` (0-based): exponential, capped, with full jitter
 *  in the upper half so a whole group that lost the network does not come back in lockstep. */
export function backoffDelay(attempt, baseMs = 500, capMs = 8000) {
  const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export class Connection {
  /**
   * @param {object} opts
   * @param {string} opts.url        ws:// or wss:// URL of /ws
   * @param {string} opts.token      the join token (kept in memory only)
   * @param {(msg: object) => void} opts.onMessage  every server message, in order, deduplicated by seq
   * @param {(status: string, detail?: object) => void} opts.onStatus
   *   'connecting' | 'open' | 'reconnecting' | 'resumed' | 'closed' (detail: {reason, code})
   */
  constructor({ url, token, onMessage, onStatus }) {
    this.url = url;
    this.token = token;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.ws = null;
    this.resumeToken = null;
    this.lastSeq = 0;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, type}
    this.outbox = [];         // messages waiting for a resume (see send)
    this.attempt = 0;
    this.retryTimer = null;
    this.connectTimer = null;
    this.keepaliveTimer = null;
    this.pongDeadline = null;
    this.finished = false;
    this.resuming = false;
    this.giveUpAt = 0;
    this.accepted = false;
    this.finalError = null;
  }

  /** Open the first socket and send `hello`. */
  start() {
    this.finished = false;
    this.attempt = 0;
    this.resumeToken = null;
    this.lastSeq = 0;
    this.#open();
  }

  /** Send a request. Returns a promise that settles on the server's `ok` or `error`. */
  request(type, fields = {}) {
    const id = this.nextId++;
    const msg = { type, id, ...fields };
    return new Promise((resolve, reject) => {
      if (!this.#sendRaw(msg)) {
        reject(Object.assign(new Error('not connected'), { code: 'offline' }));
        return;
      }
      this.pending.set(id, { resolve, reject, type });
    });
  }

  /** Send a message that needs no reply (ice candidates, ping). Returns false when offline.
   *  While a resume is under way, the latest `set_media` and subscribe answers wait in an
   *  outbox and go out once the resume is accepted (the server allows one open offer at a time,
   *  so a lost answer would stall its renegotiation). */
  send(type, fields = {}) {
    const msg = { type, ...fields };
    if (this.#sendRaw(msg)) return true;
    if (this.resumeToken && !this.finished && (type === CLIENT.set_media || type === CLIENT.sdp)) {
      this.outbox = this.outbox.filter((m) => m.type !== type || (type === CLIENT.sdp && m.pc !== msg.pc));
      this.outbox.push(msg);
    }
    return false;
  }

  /** Leave for good: the server closes with 1000. Nothing is reported to the app after this. */
  leave() {
    this.onMessage = () => {};
    this.onStatus = () => {};
    this.#clearTimers();
    if (this.ws && this.ws.readyState === WebSocket.OPEN && !this.resuming) {
      this.finished = true;
      this.ws.send(JSON.stringify({ type: CLIENT.leave }));
      // The server closes; close ourselves too if it does not within a moment.
      const ws = this.ws;
      setTimeout(() => ws.close(1000), 1000);
    } else if (this.resumeToken) {
      // Offline or mid-resume: come back just long enough to say goodbye, so the others do not
      // see us "reconnecting" for the whole grace period. Give up after 5 s.
      this.leaveAfterResume = true;
      this.finished = false;
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) this.#open();
      setTimeout(() => { this.finished = true; this.#clearTimers(); this.ws?.close(1000); }, 5000);
    } else {
      this.finished = true;
      this.ws?.close(1000);
    }
  }

  /** Stop without telling the server (used after a final message such as `removed`). */
  stop() {
    this.finished = true;
    this.#clearTimers();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }

  // ---- internals ----

  #sendRaw(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  #open() {
    clearTimeout(this.retryTimer);
    const resuming = this.resumeToken !== null;
    this.resuming = resuming;
    this.onStatus(resuming ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.#scheduleRetry();
      return;
    }
    this.ws = ws;
    // A handshake that neither opens nor fails (a flaky mobile network) must not leave us
    // stuck: give it 10 s, then try again.
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      if (ws !== this.ws || ws.readyState !== WebSocket.CONNECTING) return;
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.close();
      this.#scheduleRetry();
    }, 10_000);
    ws.onopen = () => {
      if (ws !== this.ws) return;
      clearTimeout(this.connectTimer);
      this.accepted = false;
      this.finalError = null;
      if (resuming) {
        ws.send(JSON.stringify({
          type: CLIENT.resume, protocol: PROTOCOL, resume_token: this.resumeToken, last_seq: this.lastSeq,
        }));
        // The server answers a successful resume with the missed messages (maybe none) or a fresh
        // welcome. A ping right behind it tells us, by its pong, that the resume was accepted.
        ws.send(JSON.stringify({ type: CLIENT.ping }));
      } else {
        ws.send(JSON.stringify({ type: CLIENT.hello, protocol: PROTOCOL, token: this.token }));
      }
      this.#startKeepalive();
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this.#handle(msg);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      clearTimeout(this.connectTimer);
      this.#clearTimers();
      this.#failPending();
      if (this.finished) return;
      const final = FINAL_CLOSE.get(ev.code);
      if (final && ev.code !== 1008) {
        this.finished = true;
        this.onStatus('closed', { reason: final, code: ev.code });
        return;
      }
      if (this.finalError) {
        // A failed hello/resume: the error message already told the app what happened.
        this.finished = true;
        this.onStatus('closed', { reason: 'refused', code: ev.code, error: this.finalError });
        return;
      }
      this.#scheduleRetry();
    };
  }

  #handle(msg) {
    if (!this.accepted) {
      // The first answer to hello/resume. A refusal is an `error` without an id (with `seq` 1,
      // whatever we saw before), then the server closes with 1008.
      if (msg.type === SERVER.error && msg.id == null) {
        this.finalError = { ...msg, duringResume: this.resuming };
        return;
      }
      this.accepted = true;
    }
    if (typeof msg.seq === 'number') {
      if (msg.seq <= this.lastSeq && msg.type !== SERVER.welcome) return; // a replayed duplicate
      this.lastSeq = Math.max(this.lastSeq, msg.seq);
    }
    // Anything arriving means the link is alive.
    this.pongDeadline = null;
    if (msg.type === SERVER.welcome) {
      // A fresh welcome means the server rebuilt our session: queued answers are stale.
      this.outbox = [];
      this.resumeToken = msg.resume_token ?? null;
      this.attempt = 0;
      this.resuming = false;
      this.giveUpAt = 0;
    }
    if (msg.type === SERVER.resumed) {
      // Each resume token works once: the server hands the next one after every resume.
      this.resumeToken = msg.resume_token ?? this.resumeToken;
    }
    if (msg.type === SERVER.waiting) {
      this.attempt = 0;
      this.giveUpAt = 0;
    }
    if (msg.type === SERVER.pong && this.resuming && this.leaveAfterResume) {
      this.finished = true;
      this.#sendRaw({ type: CLIENT.leave });
      return;
    }
    if (msg.type === SERVER.pong && this.resuming) {
      this.resuming = false;
      this.attempt = 0;
      this.giveUpAt = 0;
      const queued = this.outbox;
      this.outbox = [];
      for (const m of queued) this.#sendRaw(m);
      this.onStatus('resumed');
    }
    if (msg.type === SERVER.ok || msg.type === SERVER.error) {
      const p = msg.id != null ? this.pending.get(msg.id) : undefined;
      if (p) {
        this.pending.delete(msg.id);
        if (msg.type === SERVER.ok) p.resolve(msg);
        else p.reject(Object.assign(new Error(msg.message || msg.code), { code: msg.code, request: p.type }));
        return;
      }
    }
    if (msg.type === SERVER.pong) return;
    this.onMessage(msg);
  }

  #scheduleRetry() {
    // A participant whose socket dropped keeps their place for the server's grace period
    // (20 s by default); keep trying well beyond that so the server's answer (a fresh welcome,
    // or `unauthorized`) decides, not our guess. Give up after two minutes without a server.
    if (!this.giveUpAt) this.giveUpAt = Date.now() + 120_000;
    if (Date.now() > this.giveUpAt) {
      this.finished = true;
      this.onStatus('closed', { reason: 'unreachable' });
      return;
    }
    this.onStatus(this.resumeToken ? 'reconnecting' : 'connecting', { retrying: true });
    const delay = backoffDelay(this.attempt++);
    this.retryTimer = setTimeout(() => this.#open(), delay);
  }

  /** Ping every 15 s; when nothing at all comes back for 10 s, treat the socket as dead
   *  (phones switching networks often leave a socket that never closes by itself). */
  #startKeepalive() {
    clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = setInterval(() => {
      if (this.pongDeadline && Date.now() > this.pongDeadline) {
        this.ws?.close(4000);
        // onclose will not report a final code; it schedules a resume.
        return;
      }
      if (this.#sendRaw({ type: CLIENT.ping }) && !this.pongDeadline) this.pongDeadline = Date.now() + 10_000;
    }, 15_000);
  }

  #clearTimers() {
    clearTimeout(this.connectTimer);
    clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
    this.pongDeadline = null;
    clearTimeout(this.retryTimer);
  }

  #failPending() {
    for (const [, p] of this.pending) p.reject(Object.assign(new Error('connection lost'), { code: 'offline', request: p.type }));
    this.pending.clear();
  }

  /** Retry now (used by a "Try again" button after giving up). */
  retryNow() {
    this.finished = false;
    this.attempt = 0;
    this.giveUpAt = 0;
    this.#open();
  }

  /** Start over with a fresh `hello` (after the resume token stopped working). */
  rejoin() {
    this.finished = false;
    this.finalError = null;
    this.resumeToken = null;
    this.lastSeq = 0;
    this.attempt = 0;
    this.giveUpAt = 0;
    this.#open();
  }
}
