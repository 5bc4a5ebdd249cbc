// The room screen: entering it, its media (the two peer connections), and drawing it from the
// state (view.js does the drawing; this keeps keyboard focus where a person expects it).

import { Media } from './media.js';
import { CLIENT } from './protocol.js';
import { isObserver, iHoldStick } from './state.js';
import { $, renderTiles, layoutGrid, renderMyFloor, updateCountdown, renderCheckIn, renderFacilitator, tileHeights } from './view.js';
import { session } from './session.js';
import { show } from './screens.js';

// What the room's own controls do, handed in by the entry point (the controls draw the room
// again after acting, so this module does not import them).
let actions = {};
export function useActions(given) { actions = given; }

export function enterRoom() {
  const { state, localStream } = session;
  session.stopMeter();
  show('screen-room');
  document.title = 'Circle';
  const observer = isObserver(state);
  document.body.dataset.role = state.me.role;
  $('btn-mic').hidden = observer;
  $('btn-cam').hidden = observer;
  $('btn-screen').hidden = true;
  $('help-me').hidden = state.me.role !== 'member';
  $('my-floor').hidden = false;
  $('btn-mic').disabled = !localStream.getAudioTracks().length;
  $('btn-cam').disabled = !localStream.getVideoTracks().length;
  startMedia();
  clearInterval(session.countdownTimer);
  session.countdownTimer = setInterval(() => updateCountdown(state), 1000);
  render();
  // Put keyboard focus at the start of the person's own box (the floor summary, which a screen
  // reader reads out): not on a button, so a repeated Enter from joining does nothing.
  $('floor-summary').focus();
}

function startMedia() {
  const { state, conn, prefs } = session;
  sentSizes.clear();
  const media = new Media({
    request: (type, f) => session.conn.request(type, f),
    send: (type, f) => session.conn.send(type, f),
    onRemoteStream: () => render(),
    onStatus: (s, detail) => { session.mediaState = { state: s, detail: detail ?? '' }; renderMediaStatus(); },
  });
  session.media = media;
  media.iceServers = state.iceServers;
  media.setLocalStream(session.localStream);
  if (!isObserver(state)) {
    media.setEnabled('audio', prefs.audio);
    media.setEnabled('video', prefs.video);
    conn.send(CLIENT.set_media, { audio: prefs.audio, video: prefs.video });
    media.startPublishing();
  } else {
    // Observers only receive; the server offers once someone publishes.
    session.mediaState = { state: 'idle', detail: '' };
    renderMediaStatus();
  }
}

/** After a welcome that rebuilt the room: the server may have dropped our media; start again. */
export function restartMedia() {
  const { state, conn, media, prefs } = session;
  if (!media) return startMedia();
  media.closePc('publish');
  media.closePc('subscribe');
  sentSizes.clear();
  media.iceServers = state.iceServers;
  if (!isObserver(state)) {
    // The server forgot our screen with our media; a share starts again from the button.
    media.screenTrack?.stop();
    media.screenTrack = null;
    conn.send(CLIENT.set_media, { audio: prefs.audio, video: prefs.video });
    media.startPublishing();
  }
}

/** Whether the person may share a screen now: a facilitator always, a member while holding the
 *  stick (protocol.md, "Screen share"), and only where the browser can. */
export function mayShare(state) {
  if (!navigator.mediaDevices?.getDisplayMedia) return false;
  return state.me?.role === 'facilitator' || (state.me?.role === 'member' && iHoldStick(state));
}

function renderMediaStatus() {
  const m = session.mediaState;
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

/** Draw the room from the state (nothing before we are in it). */
export function render() {
  if (!session.state.me) return;
  const recent = Date.now() - lastFocusedAt < 3000 ? lastFocused : null;
  const focusedBefore = document.activeElement !== document.body ? document.activeElement : recent;
  renderRoom();
  if (focusedBefore && !isShown(focusedBefore) && (document.activeElement === document.body || document.activeElement === focusedBefore)) {
    const next = (FOCUS_NEXT[focusedBefore.id] ?? []).map((id) => $(id)).find(isShown);
    if (next) next.focus();
  }
}

function renderRoom() {
  const { state } = session;
  $('room-mode').textContent = state.floor.mode === 'stick' ? 'Talking stick mode' : 'Open floor';
  $('room-locked').hidden = !state.locked;
  renderTiles(state, session.media, session.localStream, session.prefs.layout);
  renderMyFloor(state, actions);
  renderCheckIn(state, actions);
  renderFacilitator(state, actions);
  renderOwnControls();
  reportTileSizes();
  document.body.classList.toggle('holding-stick', iHoldStick(state));
  document.body.dataset.role = state.me.role;
}

function renderOwnControls() {
  const { state, prefs } = session;
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
  const sharing = !!session.media?.screenTrack;
  const screen = $('btn-screen');
  screen.hidden = !sharing && !mayShare(state);
  screen.querySelector('.label').textContent = sharing ? 'Stop sharing' : 'Share screen';
}

// The tile heights last told to the server, by participant.
const sentSizes = new Map();
let sizesTimer = null;
/** Tell the server the size of each camera tile that changed (settled for a quarter second), so
 *  it sends each camera in the simulcast layer the tile needs, and none for a hidden one. */
function reportTileSizes() {
  clearTimeout(sizesTimer);
  sizesTimer = setTimeout(() => {
    const { state, conn } = session;
    if (!conn || state.phase !== 'room' || !state.me) return;
    const heights = tileHeights(state);
    const changed = [];
    for (const [participant, height] of heights) {
      // The server takes 64 a message; the rest go with the next.
      if (sentSizes.get(participant) !== height && changed.length < 64) {
        sentSizes.set(participant, height);
        changed.push({ participant, height });
      }
    }
    for (const id of [...sentSizes.keys()]) if (!heights.has(id)) sentSizes.delete(id);
    if (changed.length) conn.send(CLIENT.tile_sizes, { sizes: changed });
  }, 250);
}

new ResizeObserver(() => { layoutGrid(); if (session.state.phase === 'room') reportTileSizes(); }).observe($('grid'));
