// Circle's browser client: the flow from the join link to the room, and the controls.
//
// Modules: connection.js (WebSocket, resume), media.js (camera, microphone, peer connections),
// state.js (the room as we know it), view.js (drawing it). Nothing here logs names or tokens.

import { Connection } from './connection.js';
import { CLIENT, SERVER } from './protocol.js';
import { Media, openLocalMedia, listDevices, startLevelMeter } from './media.js';
import { emptyState, applyMessage, isFacilitator, isObserver, iHoldStick, nameOf, ordinal } from './state.js';
import {
  $, renderTiles, layoutGrid, renderMyFloor, updateCountdown, renderCheckIn,
  renderFacilitator, showReactions,
} from './view.js';

const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)');

let state = emptyState();
let conn = null;
let media = null;
let token = null;
let claims = null;
let stopMeter = () => {};
let localStream = new MediaStream();
const prefs = { audio: true, video: true, audioDeviceId: '', videoDeviceId: '' };
let mediaState = { state: 'idle', detail: '' };
let previewReady = Promise.resolve();

// For tests and for curious developers: the live objects (never the token).
window.circle = {
  get state() { return state; },
  get conn() { return conn; },
  get media() { return media; },
  get ws() { return conn?.ws ?? null; },
};

// ---------------------------------------------------------------------------------------------
// Screens, announcements, toasts

const SCREENS = ['screen-loading', 'screen-prejoin', 'screen-waiting', 'screen-message', 'screen-room'];
function show(screen) {
  for (const id of SCREENS) $(id).hidden = id !== screen;
  document.body.dataset.screen = screen;
}

let announceTimer = null;
/** Say something through the live region (re-announces identical text too). */
function announce(text) {
  const a = $('announcer');
  a.textContent = '';
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    a.textContent = text;
    // Clear it once read, so an old announcement never lingers in the page.
    announceTimer = setTimeout(() => { a.textContent = ''; }, 5000);
  }, 60);
}

let toastTimer = null;
function toast(text, ms = 5000) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, ms);
}

/** A final or blocking message. `rejoin` adds a button that starts over with the same link. */
function showMessage(title, text, { rejoin = null } = {}) {
  teardown();
  if (!rejoin) forgetToken(); // nothing left to come back to with this link in this tab
  $('message-title').textContent = title;
  $('message-text').textContent = text;
  const b = $('btn-rejoin');
  b.hidden = !rejoin;
  b.textContent = rejoin?.label ?? 'Rejoin';
  b.onclick = rejoin?.action ?? null;
  show('screen-message');
  document.title = `Circle: ${title}`;
  $('message-title').focus();
}

function teardown() {
  stopMeter();
  stopMeter = () => {};
  media?.stopAll();
  media = null;
  for (const t of localStream.getTracks()) t.stop();
  localStream = new MediaStream();
  clearInterval(countdownTimer);
}

// ---------------------------------------------------------------------------------------------
// The join link and the pre-join screen

// The token leaves the address bar at once (so it is not shared by a copied URL, a screenshot
// or the history), but stays in this tab's sessionStorage: someone who reloads by mistake can
// join again (the server keeps their stick and place for a new hello with the same identity).
// The storage is per tab and is cleared when the session is over for them.
const TOKEN_KEY = 'circle.token';
function readToken() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const t = params.get('token');
  if (t) {
    history.replaceState(null, '', location.pathname + location.search);
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch { /* storage may be disabled */ }
    return t;
  }
  try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
}
function forgetToken() {
  try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* ignore */ }
}

function decodeClaims(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

const DENIED = ['You could not be let in this time', 'The facilitator did not admit you to this session. Please contact your clinic if you have questions.'];
const EXPIRED = ['This link has expired', 'Join links work for a limited time. Please ask your clinic or facilitator for a new link.'];

async function startPrejoin() {
  state = emptyState();
  if (claims.exp && claims.exp * 1000 < Date.now()) {
    showMessage(...EXPIRED);
    return;
  }
  $('prejoin-name').textContent = claims.name ?? '';
  $('prejoin-role').textContent = claims.role === 'facilitator' ? ' (facilitator)' : claims.role === 'observer' ? ' (observer)' : '';
  const observer = claims.role === 'observer';
  $('prejoin-media').hidden = observer;
  $('observer-note').hidden = !observer;
  $('btn-join').disabled = false;
  $('prejoin-status').textContent = '';
  // Start from what the checkboxes say (a Rejoin keeps the person's last choice there).
  prefs.audio = $('prejoin-mic-on').checked;
  prefs.video = $('prejoin-cam-on').checked;
  show('screen-prejoin');
  document.title = 'Circle: join your group';
  if (!observer) previewReady = openPreview();
  await previewReady;
}

async function openPreview() {
  stopMeter();
  for (const t of localStream.getTracks()) t.stop();
  const { stream, problem } = await openLocalMedia({ audioDeviceId: prefs.audioDeviceId, videoDeviceId: prefs.videoDeviceId });
  if (state.phase !== 'prejoin') {
    // The person joined without waiting for a slow camera; do not start one behind their back.
    stream.getTracks().forEach((t) => t.stop());
    return;
  }
  localStream = stream;
  localStream.getVideoTracks().forEach((t) => { t.enabled = prefs.video; });
  localStream.getAudioTracks().forEach((t) => { t.enabled = prefs.audio; });
  $('preview-video').srcObject = stream;
  const hasVideo = stream.getVideoTracks().length > 0, hasAudio = stream.getAudioTracks().length > 0;
  $('preview-off').hidden = hasVideo && prefs.video;
  $('preview-off').textContent = hasVideo ? 'Camera is off' : 'No camera';
  $('media-problem').hidden = !problem;
  $('media-problem').textContent = problem ? `${problem} You can still join and take part.` : '';
  $('prejoin-cam-on').disabled = !hasVideo;
  $('prejoin-mic-on').disabled = !hasAudio;
  stopMeter = startLevelMeter(stream, (level) => {
    const pct = Math.round(level * 100);
    $('mic-meter-fill').style.width = `${pct}%`;
    $('mic-meter').setAttribute('aria-valuenow', String(pct));
  });
  const devices = await listDevices();
  fillSelect($('select-camera'), devices.video, stream.getVideoTracks()[0]);
  fillSelect($('select-mic'), devices.audio, stream.getAudioTracks()[0]);
}

function fillSelect(select, list, track) {
  const current = track?.getSettings?.().deviceId ?? '';
  select.replaceChildren(...list.map((d, i) => {
    const o = document.createElement('option');
    o.value = d.deviceId;
    o.textContent = d.label || `Device ${i + 1}`;
    o.selected = d.deviceId === current;
    return o;
  }));
  select.disabled = list.length === 0;
}

$('select-camera').addEventListener('change', (e) => { prefs.videoDeviceId = e.target.value; previewReady = openPreview(); });
$('select-mic').addEventListener('change', (e) => { prefs.audioDeviceId = e.target.value; previewReady = openPreview(); });
$('prejoin-cam-on').addEventListener('change', (e) => {
  prefs.video = e.target.checked;
  localStream.getVideoTracks().forEach((t) => { t.enabled = prefs.video; });
  $('preview-off').hidden = prefs.video && localStream.getVideoTracks().length > 0;
});
$('prejoin-mic-on').addEventListener('change', (e) => {
  prefs.audio = e.target.checked;
  localStream.getAudioTracks().forEach((t) => { t.enabled = prefs.audio; });
});

$('btn-join').addEventListener('click', join);

async function join() {
  $('btn-join').disabled = true;
  if (claims.role !== 'observer') {
    // A click can come before the browser has opened the camera (or while it asks for
    // permission): wait for it, but not forever.
    $('prejoin-status').textContent = 'Starting your camera and microphone…';
    let timer;
    await Promise.race([previewReady, new Promise((r) => { timer = setTimeout(r, 20_000); })]);
    clearTimeout(timer);
  }
  state.phase = 'joining';
  $('prejoin-status').textContent = 'Connecting…';
  if (claims.role === 'observer') {
    localStream = new MediaStream();
  } else {
    if (!localStream.getAudioTracks().length) prefs.audio = false;
    if (!localStream.getVideoTracks().length) prefs.video = false;
  }
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  conn = new Connection({
    url: `${scheme}://${location.host}/ws`,
    token,
    onMessage,
    onStatus,
  });
  conn.start();
}

// ---------------------------------------------------------------------------------------------
// Connection status and server messages

function onStatus(status, detail = {}) {
  switch (status) {
    case 'connecting':
      if (state.phase === 'waiting') $('waiting-status').textContent = detail.retrying ? 'Connection lost. Trying again…' : '';
      else if (detail.retrying) $('prejoin-status').textContent = 'Cannot reach the server yet. Trying again…';
      break;
    case 'reconnecting':
      setReconnecting(true);
      break;
    case 'resumed':
      setReconnecting(false);
      announce('Reconnected.');
      media?.restartPublishIce();
      break;
    case 'closed':
      onClosed(detail);
      break;
  }
}

function setReconnecting(on) {
  if (on === !$('reconnecting-banner').hidden) return; // each retry reports again; say it once
  $('reconnecting-banner').hidden = !on;
  document.body.classList.toggle('is-reconnecting', on);
  // Our own tile shows it as well, the way the others see us.
  if (state.me) {
    const me = state.participants.get(state.me.id);
    if (me) me.connection = on ? 'reconnecting' : 'connected';
    render();
  }
  if (on) announce('Connection lost, getting you back…');
}

function onClosed({ reason, error }) {
  if (state.phase === 'gone' && reason !== 'refused') return; // already showing why
  const again = { label: 'Rejoin', action: () => startPrejoin() };
  switch (reason) {
    case 'left': return showMessage('You left the session', 'Thank you for being here. If you left by mistake, you can come back.', { rejoin: again });
    case 'removed': return showMessage('You were removed from this session', 'A facilitator removed you from this session. If this is unexpected, please contact your clinic.');
    case 'replaced': return showMessage('You joined from another window', 'This session continues in your other window or device. You can close this one.');
    case 'denied': return showMessage(...DENIED);
    case 'ended': return showMessage('The session has ended', 'Thank you for taking part. Take care of yourself.');
    case 'unreachable':
      return showMessage('We cannot reach the server', 'Please check your internet connection.', {
        rejoin: { label: 'Try again', action: () => { show(state.phase === 'room' ? 'screen-room' : 'screen-prejoin'); conn.retryNow(); } },
      });
    case 'refused': return onRefused(error);
    default: return showMessage('Disconnected', 'The connection closed.', { rejoin: again });
  }
}

function onRefused(error) {
  switch (error?.code) {
    case 'unauthorized':
      if (error.duringResume) {
        return showMessage('You were away too long', 'Your place in the session was released while you were disconnected. You can rejoin with the same link while it is valid.', {
          rejoin: { label: 'Rejoin', action: () => startPrejoin() },
        });
      }
      return showMessage(...EXPIRED);
    case 'room_locked':
      return showMessage('The room is locked', 'The facilitator has locked this session, so no one new can join right now. You can try again in a while, or contact your clinic.', {
        rejoin: { label: 'Try again', action: () => startPrejoin() },
      });
    case 'forbidden':
      return showMessage('You cannot rejoin this session', 'A facilitator removed you from this session. If this is unexpected, please contact your clinic.');
    case 'rate_limited':
      return showMessage('Too many attempts', 'Please wait a moment, then try again.', { rejoin: { label: 'Try again', action: () => startPrejoin() } });
    case 'room_full':
      return showMessage('The room is full', 'This session has as many people as it can hold. Please contact your clinic.');
    case 'unsupported_protocol':
      return showMessage('Please reload the page', 'This page is out of date for the server. Reloading usually fixes it.');
    default:
      return showMessage('Could not join', 'The server refused the connection.', { rejoin: { label: 'Try again', action: () => startPrejoin() } });
  }
}

function onMessage(msg) {
  const before = state.phase;
  const events = applyMessage(state, msg);
  switch (msg.type) {
    case SERVER.welcome:
      if (before === 'room') {
        // A resume the server could not replay: everything was rebuilt from this welcome, and
        // the server may have dropped our media, so start it afresh too.
        setReconnecting(false);
        restartMedia();
      } else {
        enterRoom();
      }
      break;
    case SERVER.waiting:
      show('screen-waiting');
      document.title = 'Circle: waiting room';
      $('waiting-status').textContent = '';
      stopMeter();
      // Focus the heading, not Leave: a second press of Enter must not undo the join.
      $('waiting-title-h').focus();
      break;
    case SERVER.sdp: media?.handleSdp(msg); break;
    case SERVER.ice: media?.handleIce(msg); break;
    case SERVER.denied: conn.stop(); state.phase = 'gone'; showMessage(...DENIED); return;
    case SERVER.removed: conn.stop(); state.phase = 'gone'; showMessage('You were removed from this session', 'A facilitator removed you from this session. If this is unexpected, please contact your clinic.'); return;
    case SERVER.session_ended:
      conn.stop();
      state.phase = 'gone';
      showMessage('The session has ended', msg.reason === 'server_shutdown'
        ? 'The server had to stop. Thank you for taking part; your clinic will be in touch about the next session.'
        : 'Thank you for taking part. Take care of yourself.');
      return;
    case SERVER.error:
      // Errors with an id are shown by the request that caused them. Those without one answer
      // hello/resume (handled by the connection) or messages we send without expecting a reply
      // (ice, set_media, a subscribe answer): media trouble shows in the media status instead.
      break;
  }
  for (const ev of events) handleEvent(ev);
  if (state.phase === 'room') render();
}

function handleEvent(ev) {
  switch (ev.kind) {
    // Announcements never repeat a text shown on the page, so finding that text (by a person
    // searching the page, or a test) finds the visible one only.
    case 'admitted': announce(ev.fromWaiting ? 'You have been let in. Welcome.' : 'Welcome, you are in the room.'); break;
    case 'stick-arrived': announce('The talking stick is yours now.'); break;
    case 'stick-left': announce('The talking stick has moved on.'); break;
    case 'you-are-next': if (!iHoldStick(state)) announce('Your turn is next.'); break;
    case 'hand':
      if (ev.status === 'queued' && ev.position && ev.position !== 1) announce(`Hand raised: number ${ev.position} in the queue.`);
      else if (ev.status === 'cancelled') announce('Hand down.');
      else if (ev.status === 'denied') announce('A facilitator put your hand down.');
      else if (ev.status === 'revoked') announce('Your turn has ended.');
      break;
    case 'invited': announce('Invitation from the facilitator: would you like to speak now?'); break;
    case 'invite-answered': announce(`Invitation answer from ${nameOf(state, ev.participant)}: ${ev.accepted ? 'yes' : 'no, thank you'}.`); break;
    case 'turn-warning':
      if (iHoldStick(state)) announce(`Your turn ends in ${ev.seconds} seconds.`);
      else if (isFacilitator(state)) announce(`The current turn ends in ${ev.seconds} seconds.`);
      break;
    case 'reactions': showReactions(ev.counts, reducedMotion.matches); break;
    case 'help': announce(`Private message: ${nameOf(state, ev.participant)} needs you.`); break;
    case 'check-in': if (!isFacilitator(state)) announce('New anonymous question from the facilitator.'); break;
    case 'check-in-result': announce('The answers to the question are in.'); break;
    case 'waiting-room':
      if (state.waiting.length > lastWaitingCount) announce(`${state.waiting.length} waiting to be let in.`);
      lastWaitingCount = state.waiting.length;
      break;
    case 'locked': announce(ev.locked ? 'Locked: no one new can join.' : 'Unlocked: new people can join.'); break;
    case 'mode': announce(ev.mode === 'stick' ? 'From now on, only the stick holder speaks.' : 'From now on, everyone may speak.'); break;
  }
}
let lastWaitingCount = 0;

function errorText(code) {
  return {
    forbidden: 'That is not something your role can do.',
    not_found: 'That person or check-in is no longer here.',
    conflict: 'That does not fit what is happening right now.',
    rate_limited: 'A little slower, please.',
    bad_request: 'The server did not understand that request.',
    internal: 'Something went wrong on the server.',
    offline: 'You are offline right now; try again in a moment.',
  }[code] ?? 'That did not work.';
}

/** Send a request; show a refusal as a toast (`texts` may word a code for this request).
 *  Resolves to true on `ok`. */
async function ask(type, fields, texts = {}) {
  if (!conn) return false;
  try {
    await conn.request(type, fields);
    return true;
  } catch (e) {
    toast(texts[e.code] ?? errorText(e.code));
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// The room

let countdownTimer = null;

function enterRoom() {
  stopMeter();
  show('screen-room');
  document.title = 'Circle';
  const observer = isObserver(state);
  const fac = isFacilitator(state);
  document.body.dataset.role = state.me.role;
  $('btn-mic').hidden = observer;
  $('btn-cam').hidden = observer;
  $('help-me').hidden = state.me.role !== 'member';
  $('my-floor').hidden = false;
  $('btn-mic').disabled = !localStream.getAudioTracks().length;
  $('btn-cam').disabled = !localStream.getVideoTracks().length;
  if (fac) lastWaitingCount = state.waiting.length;
  startMedia();
  clearInterval(countdownTimer);
  countdownTimer = setInterval(() => updateCountdown(state), 1000);
  render();
  // Put keyboard focus at the start of the person's own box (the floor summary, which a screen
  // reader reads out): not on a button, so a repeated Enter from joining does nothing.
  $('floor-summary').focus();
}

function startMedia() {
  media = new Media({
    request: (type, f) => conn.request(type, f),
    send: (type, f) => conn.send(type, f),
    onRemoteStream: () => render(),
    onStatus: (s, detail) => { mediaState = { state: s, detail: detail ?? '' }; renderMediaStatus(); },
  });
  media.iceServers = state.iceServers;
  media.setLocalStream(localStream);
  if (!isObserver(state)) {
    media.setEnabled('audio', prefs.audio);
    media.setEnabled('video', prefs.video);
    conn.send(CLIENT.set_media, { audio: prefs.audio, video: prefs.video });
    media.startPublishing();
  } else {
    // Observers only receive; the server offers once someone publishes.
    mediaState = { state: 'idle', detail: '' };
    renderMediaStatus();
  }
}

function restartMedia() {
  if (!media) return startMedia();
  media.closePc('publish');
  media.closePc('subscribe');
  media.iceServers = state.iceServers;
  if (!isObserver(state)) {
    conn.send(CLIENT.set_media, { audio: prefs.audio, video: prefs.video });
    media.startPublishing();
  }
}

function renderMediaStatus() {
  const m = mediaState;
  const text = {
    idle: '',
    connecting: m.detail || 'Video and sound: connecting…',
    connected: '',
    'no-local': m.detail,
    unavailable: `Video and sound are not available: ${m.detail} Everything else works.`,
    failed: `${m.detail} Everything else works.`,
  }[m.state] ?? '';
  $('media-status').textContent = text;
  $('media-status').dataset.state = m.state;
}

// When a control hides itself (Raise hand becomes Lower hand, the invitation goes away, ...),
// keyboard focus moves to the control that takes its place instead of the top of the page.
const FOCUS_NEXT = {
  'btn-raise': ['btn-lower', 'btn-done'],
  'btn-lower': ['btn-raise', 'btn-done'],
  'btn-done': ['btn-raise', 'btn-lower'],
  'btn-accept': ['btn-done', 'btn-raise', 'btn-lower'],
  'btn-pass': ['btn-raise', 'btn-lower', 'btn-done'],
  'btn-checkin-start': ['btn-checkin-close'],
  'btn-checkin-close': ['btn-checkin-start'],
};
const isShown = (e) => !!e && e.offsetParent !== null && !e.disabled;
// The control focused last, while it is recent: a control hidden between two renders (the
// browser then drops its focus) still gets its successor focused, but never minutes later.
let lastFocused = null;
let lastFocusedAt = 0;
document.addEventListener('focusin', (e) => { lastFocused = e.target; lastFocusedAt = Date.now(); });

function render() {
  if (!state.me) return;
  const recent = Date.now() - lastFocusedAt < 3000 ? lastFocused : null;
  const focusedBefore = document.activeElement !== document.body ? document.activeElement : recent;
  renderRoom();
  if (focusedBefore && !isShown(focusedBefore) && (document.activeElement === document.body || document.activeElement === focusedBefore)) {
    const next = (FOCUS_NEXT[focusedBefore.id] ?? []).map((id) => $(id)).find(isShown);
    if (next) next.focus();
  }
}

function renderRoom() {
  $('room-mode').textContent = state.floor.mode === 'stick' ? 'Talking stick mode' : 'Open floor';
  $('room-locked').hidden = !state.locked;
  renderTiles(state, media, localStream);
  renderMyFloor(state, actions);
  renderCheckIn(state, actions);
  renderFacilitator(state, actions);
  renderOwnControls();
  document.body.classList.toggle('holding-stick', iHoldStick(state));
  document.body.dataset.role = state.me.role;
}

function renderOwnControls() {
  const me = state.participants.get(state.me.id) ?? state.me;
  const mic = $('btn-mic'), cam = $('btn-cam');
  mic.setAttribute('aria-pressed', String(prefs.audio));
  cam.setAttribute('aria-pressed', String(prefs.video));
  let hint = '';
  if (me.muted) hint = 'A facilitator has muted your microphone for now.';
  else if (state.floor.mode === 'stick' && me.role === 'member' && !iHoldStick(state)) hint = 'Your microphone is held by the room until the talking stick comes to you.';
  else if (!prefs.audio && me.role !== 'observer') hint = 'Your microphone is off.';
  mic.classList.toggle('held', !!hint && prefs.audio);
  $('mic-hint').textContent = hint;
}

// Everything the view's buttons call.
const actions = {
  admit: (id) => ask(CLIENT.admit, { participant: id }),
  deny: (id) => ask(CLIENT.deny, { participant: id }),
  grant: (id) => ask(CLIENT.grant_floor, { participant: id }),
  invite: async (id) => { if (await ask(CLIENT.invite_to_speak, { participant: id })) toast(`Invitation sent to ${nameOf(state, id)}.`); },
  lowerHand: (id) => ask(CLIENT.lower_hand, { participant: id }),
  toggleMute: (id) => {
    const p = state.participants.get(id);
    if (p) ask(p.muted ? CLIENT.unmute : CLIENT.mute, { participant: id });
  },
  remove: (id) => ask(CLIENT.remove, { participant: id }),
  passTo: (id) => ask(CLIENT.pass_floor, { to: id }),
  dismissResult: () => { state.checkInResult = null; render(); },
  dismissPrivate: (key) => {
    state.helpRequests = state.helpRequests.filter((h) => `h${h.at}${h.participant}` !== key);
    state.inviteAnswers = state.inviteAnswers.filter((a) => `i${a.at}${a.participant}` !== key);
    render();
  },
};

// Own controls
$('btn-mic').addEventListener('click', () => {
  prefs.audio = !prefs.audio;
  $('prejoin-mic-on').checked = prefs.audio;
  media?.setEnabled('audio', prefs.audio);
  conn.send(CLIENT.set_media, { audio: prefs.audio, video: prefs.video });
  render();
});
$('btn-cam').addEventListener('click', () => {
  prefs.video = !prefs.video;
  $('prejoin-cam-on').checked = prefs.video;
  media?.setEnabled('video', prefs.video);
  conn.send(CLIENT.set_media, { audio: prefs.audio, video: prefs.video });
  render();
});
$('btn-leave').addEventListener('click', () => { state.phase = 'gone'; conn?.leave(); onClosedLeft(); });
$('btn-waiting-leave').addEventListener('click', () => { state.phase = 'gone'; conn?.leave(); onClosedLeft(); });
function onClosedLeft() {
  showMessage('You left the session', 'Thank you for being here. If you left by mistake, you can come back.', {
    rejoin: { label: 'Rejoin', action: () => startPrejoin() },
  });
}
$('btn-help').addEventListener('click', async () => {
  if (await ask(CLIENT.need_help, {})) toast('The facilitator has been told, privately. Nobody else sees this.');
});
for (const b of document.querySelectorAll('.reaction')) {
  b.addEventListener('click', async () => {
    b.classList.add('sent');
    setTimeout(() => b.classList.remove('sent'), 400);
    await ask(CLIENT.react, { kind: b.dataset.kind }, {
      // The server counts reactions only among three or more, so nobody can tell who sent one.
      conflict: 'Reactions are sent once at least three people are here, so nobody can tell who sent them.',
    });
  });
}

// Member floor controls
$('btn-raise').addEventListener('click', async () => {
  const note = $('hand-note').value.trim();
  if (await ask(CLIENT.raise_hand, note ? { note } : {})) $('hand-note').value = '';
  if (!$('btn-lower').hidden) $('btn-lower').focus();
});
$('btn-lower').addEventListener('click', async () => {
  await ask(CLIENT.lower_hand, {});
  if (!$('btn-raise').hidden) $('btn-raise').focus();
});
$('btn-done').addEventListener('click', () => ask(CLIENT.release_floor, {}));
$('btn-accept').addEventListener('click', async () => { state.invited = false; render(); await ask(CLIENT.answer_invite, { accept: true }); });
$('btn-pass').addEventListener('click', async () => { state.invited = false; render(); await ask(CLIENT.answer_invite, { accept: false }); });

// Check-in
$('btn-checkin-send').addEventListener('click', async () => {
  const chosen = document.querySelector('#checkin-options input:checked');
  if (!chosen || !state.checkIn) { toast('Choose an answer first.'); return; }
  const option = Number(chosen.value);
  if (await ask(CLIENT.answer_check_in, { check_in: state.checkIn.check_in, option })) {
    state.myCheckInAnswer = option;
    render();
  }
});
$('btn-checkin-start').addEventListener('click', async () => {
  const question = $('checkin-question').value.trim();
  const options = $('checkin-options-input').value.split('\n').map((s) => s.trim()).filter(Boolean);
  if (!question || options.length < 2 || options.length > 10) { toast('Write a question and 2 to 10 options, one per line.'); return; }
  await ask(CLIENT.start_check_in, { question, options });
});
$('btn-checkin-close').addEventListener('click', () => {
  if (state.checkIn) ask(CLIENT.close_check_in, { check_in: state.checkIn.check_in });
});

// Facilitator floor and session controls
$('switch-stick').addEventListener('change', async (e) => {
  const mode = e.target.checked ? 'stick' : 'open';
  // Any render before the server's answer (a speaking update, someone joining) would otherwise
  // flip the switch back to the old mode under the facilitator's finger.
  state.pendingFloorMode = mode;
  const ok = await ask(CLIENT.set_floor_mode, { mode });
  state.pendingFloorMode = null;
  if (!ok) e.target.checked = state.floor.mode === 'stick';
});
$('btn-grant-next').addEventListener('click', () => ask(CLIENT.grant_next, {}));
$('btn-revoke').addEventListener('click', () => ask(CLIENT.revoke_floor, {}));
$('turn-limit').addEventListener('input', (e) => { e.target.dataset.userEdited = '1'; });
$('btn-turn-limit').addEventListener('click', async () => {
  const raw = $('turn-limit').value.trim();
  const seconds = raw === '' ? null : Math.round(Number(raw));
  if (seconds !== null && !(seconds >= 1 && seconds <= 3600)) { toast('A turn limit is between 1 and 3600 seconds, or empty for none.'); return; }
  if (await ask(CLIENT.set_turn_limit, { seconds })) {
    // Protocol v1 has no event for the turn limit (this server adds `room_updated`).
    state.turnLimit = seconds;
    $('turn-limit').dataset.userEdited = '';
    toast(seconds ? `Turns are now limited to ${seconds} seconds.` : 'Turns have no time limit now.');
    render();
  }
});
$('btn-lock').addEventListener('click', async () => {
  const locked = !state.locked;
  if (await ask(CLIENT.lock_room, { locked })) {
    // Protocol v1 has no event for the lock (this server adds `room_updated`); the ok means
    // it is applied, so show it even without the event.
    if (state.locked !== locked) handleEvent({ kind: 'locked', locked });
    state.locked = locked;
    render();
  }
});
$('btn-end').addEventListener('click', () => ask(CLIENT.end_session, {}));
$('btn-admit-all').addEventListener('click', () => ask(CLIENT.admit_all, {}));

// Audio that the browser refused to start without a tap.
document.addEventListener('circle-autoplay-blocked', () => {
  const t = $('toast');
  if (t.dataset.autoplay) return;
  t.dataset.autoplay = '1';
  t.replaceChildren('Your browser paused the sound. ', Object.assign(document.createElement('button'), {
    type: 'button', textContent: 'Turn on sound',
    onclick: () => { document.querySelectorAll('.tile audio').forEach((a) => a.play().catch(() => {})); t.hidden = true; delete t.dataset.autoplay; },
  }));
  t.hidden = false;
});

new ResizeObserver(() => layoutGrid()).observe($('grid'));

// ---------------------------------------------------------------------------------------------
// Start

token = readToken();
claims = token ? decodeClaims(token) : null;
if (!token) {
  showMessage('Please use your join link', 'Circle opens from the personal link your clinic sent you. Open that link to join your group.');
} else if (!claims) {
  showMessage('This link does not work', 'The link seems to be incomplete. Please copy the whole link, or ask your clinic for a new one.');
} else {
  startPrejoin();
}
