// What the room's controls do: the person's own (microphone, camera, leave, help, reactions),
// the member's floor controls, the check-in, and the facilitator's floor and session controls,
// plus `actions`, which the view's per-person buttons call. Requests go to the server through
// `ask`; a change the page must show before the server's word goes through `act` (dispatch.js).

import { CLIENT } from './protocol.js';
import { nameOf } from './state.js';
import { $ } from './view.js';
import { session, saveLayout } from './session.js';
import { captureScreen } from './media.js';
import { toast, withdrawToast } from './screens.js';
import { act, leave } from './dispatch.js';
import { render } from './room.js';

const { prefs } = session;

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
  if (!session.conn) return false;
  try {
    await session.conn.request(type, fields);
    return true;
  } catch (e) {
    toast(texts[e.code] ?? errorText(e.code));
    return false;
  }
}

// Everything the view's buttons call.
export const actions = {
  admit: (id) => ask(CLIENT.admit, { participant: id }),
  deny: (id) => ask(CLIENT.deny, { participant: id }),
  grant: (id) => ask(CLIENT.grant_floor, { participant: id }),
  invite: async (id) => { if (await ask(CLIENT.invite_to_speak, { participant: id })) toast(`Invitation sent to ${nameOf(session.state, id)}.`); },
  lowerHand: (id) => ask(CLIENT.lower_hand, { participant: id }),
  toggleMute: (id) => {
    const p = session.state.participants.get(id);
    if (p) ask(p.muted ? CLIENT.unmute : CLIENT.mute, { participant: id });
  },
  remove: (id) => ask(CLIENT.remove, { participant: id }),
  passTo: (id) => ask(CLIENT.pass_floor, { to: id }),
  dismissResult: () => act({ kind: 'result-dismissed' }),
  dismissPrivate: (key) => act({ kind: 'private-dismissed', key }),
};

// Own controls
$('btn-mic').addEventListener('click', () => {
  prefs.audio = !prefs.audio;
  $('prejoin-mic-on').checked = prefs.audio;
  session.media?.setEnabled('audio', prefs.audio);
  session.conn.send(CLIENT.set_media, { audio: prefs.audio, video: prefs.video });
  render();
});
$('btn-cam').addEventListener('click', () => {
  prefs.video = !prefs.video;
  $('prejoin-cam-on').checked = prefs.video;
  session.media?.setEnabled('video', prefs.video);
  session.conn.send(CLIENT.set_media, { audio: prefs.audio, video: prefs.video });
  render();
});
$('btn-screen').addEventListener('click', () => (session.media?.screenTrack ? stopSharing() : startSharing()));

const SHARE_REFUSED = 'Only a facilitator, or a member holding the talking stick, can share a screen.';

/** Share a screen: the browser's picker, then `set_media` announcing the track, then the offer
 *  (protocol.md: announce, then offer). Cancelling the picker changes nothing. */
async function startSharing() {
  const media = session.media;
  if (!media || media.screenTrack) return;
  let track;
  try {
    track = await captureScreen();
  } catch (e) {
    if (e?.name !== 'NotAllowedError' && e?.name !== 'AbortError') toast('Your screen could not be shared.');
    return;
  }
  const announced = await ask(CLIENT.set_media, { audio: prefs.audio, video: prefs.video, screen: track.id }, { forbidden: SHARE_REFUSED });
  if (!announced || session.media !== media) { track.stop(); return; }
  // The browser's own "Stop sharing" bar ends the capture: stop cleanly then too.
  track.addEventListener('ended', () => { if (session.media?.screenTrack === track) stopSharing(); });
  render();
  if (!await media.publishScreen(track)) {
    toast('Your screen could not be shared.');
    ask(CLIENT.set_media, { audio: prefs.audio, video: prefs.video, screen: null });
  }
  render();
}

/** Stop sharing, and tell the room unless the server already ended the share (`tell: false`). */
export async function stopSharing({ tell = true } = {}) {
  const media = session.media;
  if (!media?.screenTrack) return;
  const stopping = media.stopScreen();
  render();
  if (tell) ask(CLIENT.set_media, { audio: prefs.audio, video: prefs.video, screen: null });
  await stopping;
}

$('btn-layout').addEventListener('click', () => {
  const spotlight = $('stage').dataset.layout === 'spotlight';
  saveLayout(spotlight ? 'grid' : 'spotlight');
  render();
  $('btn-layout').focus();
});
$('btn-leave').addEventListener('click', leave);
$('btn-waiting-leave').addEventListener('click', leave);
$('btn-help').addEventListener('click', async () => {
  if (await ask(CLIENT.need_help, {})) toast('The facilitator has been told, privately. Nobody else sees this.');
});
const TOO_FEW_TO_REACT = 'Reactions are sent once at least three people are here, so nobody can tell who sent them.';
for (const b of document.querySelectorAll('.reaction')) {
  b.addEventListener('click', async () => {
    b.classList.add('sent');
    setTimeout(() => b.classList.remove('sent'), 400);
    // The server counts reactions only among three or more, so nobody can tell who sent one.
    // Once one goes through, an earlier refusal still on screen would only mislead.
    if (await ask(CLIENT.react, { kind: b.dataset.kind }, { conflict: TOO_FEW_TO_REACT })) {
      withdrawToast(TOO_FEW_TO_REACT);
    }
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
$('btn-accept').addEventListener('click', async () => { act({ kind: 'invite-answering' }); await ask(CLIENT.answer_invite, { accept: true }); });
$('btn-pass').addEventListener('click', async () => { act({ kind: 'invite-answering' }); await ask(CLIENT.answer_invite, { accept: false }); });

// Check-in
$('btn-checkin-send').addEventListener('click', async () => {
  const open = session.state.checkIn;
  const chosen = document.querySelector('#checkin-options input:checked');
  if (!chosen || !open) { toast('Choose an answer first.'); return; }
  const option = Number(chosen.value);
  if (await ask(CLIENT.answer_check_in, { check_in: open.check_in, option })) act({ kind: 'check-in-answered', option });
});
$('btn-checkin-start').addEventListener('click', async () => {
  const question = $('checkin-question').value.trim();
  const options = $('checkin-options-input').value.split('\n').map((s) => s.trim()).filter(Boolean);
  if (!question || options.length < 2 || options.length > 10) { toast('Write a question and 2 to 10 options, one per line.'); return; }
  await ask(CLIENT.start_check_in, { question, options });
});
$('btn-checkin-close').addEventListener('click', () => {
  const open = session.state.checkIn;
  if (open) ask(CLIENT.close_check_in, { check_in: open.check_in });
});

// Facilitator floor and session controls
$('switch-stick').addEventListener('change', async (e) => {
  const mode = e.target.checked ? 'stick' : 'open';
  // Any render before the server's answer (a speaking update, someone joining) would otherwise
  // flip the switch back to the old mode under the facilitator's finger. No render of our own
  // either way: the switch already shows the mode asked for, and the floor message redraws it.
  act({ kind: 'mode-requested', mode }, { quiet: true });
  const ok = await ask(CLIENT.set_floor_mode, { mode });
  act({ kind: 'mode-request-done' }, { quiet: true });
  if (!ok) e.target.checked = session.state.floor.mode === 'stick';
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
    $('turn-limit').dataset.userEdited = '';
    toast(seconds ? `Turns are now limited to ${seconds} seconds.` : 'Turns have no time limit now.');
    act({ kind: 'turn-limit-set', seconds });
  }
});
$('btn-lock').addEventListener('click', async () => {
  const locked = !session.state.locked;
  // Protocol v1 has no event for the lock (this server adds `room_updated`); the ok means it is
  // applied, so show (and announce) it even without the event.
  if (await ask(CLIENT.lock_room, { locked })) act({ kind: 'lock-set', locked });
});
$('btn-end').addEventListener('click', () => ask(CLIENT.end_session, {}));
$('btn-admit-all').addEventListener('click', () => ask(CLIENT.admit_all, {}));
