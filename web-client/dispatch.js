// The one way into the state: server messages (`onMessage`) and the UI's own actions (`act`)
// go through state.js's reducer here, and then come what follows from them: the screen to show,
// the announcements of the reducer's events, and drawing the room. Also the connection's life:
// opening it (`connect`), its status, and why it closed.
//
// prejoin.js and this module import each other (Join connects; Rejoin starts the pre-join
// again); they only call each other's functions later, never while loading.

import { Connection } from './connection.js';
import { SERVER } from './protocol.js';
import { applyMessage, applyAction, isFacilitator, iHoldStick, nameOf } from './state.js';
import { $, showReactions, spotlightOf } from './view.js';
import { session } from './session.js';
import { show, announce, showMessage, DENIED, EXPIRED, REMOVED, LEFT } from './screens.js';
import { enterRoom, restartMedia, render } from './room.js';

const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)');

/** Apply one of the UI's own actions (see state.js `applyAction`), announce what it caused and
 *  draw the room again; `quiet` skips the drawing (the room is not shown, or must not be yet). */
// What "Rejoin" and "Try again" do: start over at the pre-join screen. The entry point hands it
// in, so that this module and the pre-join screen (which connects through this one) do not
// import each other.
let restart = () => {};
export function onRestart(start) { restart = start; }

export function act(action, { quiet = false } = {}) {
  const events = applyAction(session.state, action);
  for (const ev of events) handleEvent(ev);
  if (!quiet) render();
}

/** Open the connection, whose messages and status come here. */
export function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  session.conn = new Connection({
    url: `${scheme}://${location.host}/ws`,
    token: session.token,
    onMessage,
    onStatus,
  });
  session.conn.start();
}

// ---------------------------------------------------------------------------------------------
// Connection status

function onStatus(status, detail = {}) {
  switch (status) {
    case 'connecting':
      if (session.state.phase === 'waiting') $('waiting-status').textContent = detail.retrying ? 'Connection lost. Trying again…' : '';
      else if (detail.retrying) $('prejoin-status').textContent = 'Cannot reach the server yet. Trying again…';
      break;
    case 'reconnecting':
      setReconnecting(true);
      break;
    case 'resumed':
      setReconnecting(false);
      announce('Reconnected.');
      // `resumed` carried fresh TURN credentials: the restarted ICE gathers with them.
      session.media?.useIceServers(session.state.iceServers);
      session.media?.restartPublishIce();
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
  if (session.state.me) act({ kind: 'reconnecting', on });
  if (on) announce('Connection lost, getting you back…');
}

/** The person pressed Leave (in the room or the waiting room). */
export function leave() {
  act({ kind: 'left' }, { quiet: true });
  session.conn?.leave();
  showLeft();
}

function showLeft() {
  showMessage(...LEFT, { rejoin: { label: 'Rejoin', action: () => restart() } });
}

function onClosed({ reason, error }) {
  if (session.state.phase === 'gone' && reason !== 'refused') return; // already showing why
  const again = { label: 'Rejoin', action: () => restart() };
  switch (reason) {
    case 'left': return showMessage(...LEFT, { rejoin: again });
    case 'removed': return showMessage(...REMOVED);
    case 'replaced': return showMessage('You joined from another window', 'This session continues in your other window or device. You can close this one.');
    case 'denied': return showMessage(...DENIED);
    case 'ended': return showMessage('The session has ended', 'Thank you for taking part. Take care of yourself.');
    case 'unreachable':
      return showMessage('We cannot reach the server', 'Please check your internet connection.', {
        rejoin: { label: 'Try again', action: () => { show(session.state.phase === 'room' ? 'screen-room' : 'screen-prejoin'); session.conn.retryNow(); } },
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
          rejoin: { label: 'Rejoin', action: () => restart() },
        });
      }
      return showMessage(...EXPIRED);
    case 'room_locked':
      return showMessage('The room is locked', 'The facilitator has locked this session, so no one new can join right now. You can try again in a while, or contact your clinic.', {
        rejoin: { label: 'Try again', action: () => restart() },
      });
    case 'forbidden':
      return showMessage('You cannot rejoin this session', 'A facilitator removed you from this session. If this is unexpected, please contact your clinic.');
    case 'rate_limited':
      return showMessage('Too many attempts', 'Please wait a moment, then try again.', { rejoin: { label: 'Try again', action: () => restart() } });
    case 'room_full':
      return showMessage('The room is full', 'This session has as many people as it can hold. Please contact your clinic.');
    case 'unsupported_protocol':
      return showMessage('Please reload the page', 'This page is out of date for the server. Reloading usually fixes it.');
    default:
      return showMessage('Could not join', 'The server refused the connection.', { rejoin: { label: 'Try again', action: () => restart() } });
  }
}

// ---------------------------------------------------------------------------------------------
// Server messages

function onMessage(msg) {
  const { state, conn, media } = session;
  const before = state.phase;
  // The reducer has already set the phase to 'gone' for denied, removed and session_ended.
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
      session.stopMeter();
      // Focus the heading, not Leave: a second press of Enter must not undo the join.
      $('waiting-title-h').focus();
      break;
    case SERVER.participant_updated:
      // The server ended our share (the stick moved on, or was given back): stop capturing too.
      if (msg.participant.id === state.me?.id && !msg.participant.screen && media?.screenTrack) {
        media.stopScreen().then(() => render());
      }
      break;
    case SERVER.sdp: media?.handleSdp(msg); break;
    case SERVER.ice: media?.handleIce(msg); break;
    case SERVER.denied: conn.stop(); showMessage(...DENIED); return;
    case SERVER.removed: conn.stop(); showMessage(...REMOVED); return;
    case SERVER.session_ended:
      conn.stop();
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

// ---------------------------------------------------------------------------------------------
// The reducer's events, said out loud

function handleEvent(ev) {
  const { state } = session;
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
    case 'waiting-room': if (ev.grew) announce(`${state.waiting.length} waiting to be let in.`); break;
    case 'locked': announce(ev.locked ? 'Locked: no one new can join.' : 'Unlocked: new people can join.'); break;
    case 'mode': announce(ev.mode === 'stick' ? 'From now on, only the stick holder speaks.' : 'From now on, everyone may speak.'); break;
    case 'holder':
      // The spotlight follows the stick; the new holder hears their own news as 'stick-arrived'.
      if (ev.holder && ev.holder !== state.me?.id && spotlightOf(state, session.media, session.prefs.layout)) {
        announce(`Spotlight on ${nameOf(state, ev.holder)}, who has the talking stick.`);
      }
      break;
    case 'screen':
      if (ev.participant === state.me?.id) { if (!ev.on) announce('Your screen share has ended.'); }
      else announce(ev.on ? `${nameOf(state, ev.participant)} started sharing a screen.` : `${nameOf(state, ev.participant)} stopped sharing a screen.`);
      break;
  }
}
