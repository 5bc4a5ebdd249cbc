// The room as this client knows it, and its only writer. Pure data: no DOM, no socket.
//
// Two entries change `state` in place, and both return a list of notable events for the UI to
// announce (admission, the stick arriving, being next, the room locked, ...):
// - `applyMessage(state, msg)`: a message from the server;
// - `applyAction(state, action)`: something the person did here that the state must show before
//   (or without) the server's word, such as the mode a facilitator just asked for.
// Nothing else assigns into the state, so every change to what the page shows can be found here.

import { SERVER } from './protocol.js';

export function emptyState() {
  return {
    phase: 'prejoin', // prejoin | joining | waiting | room | gone
    me: null,          // our Participant
    roomId: null,
    participants: new Map(), // id -> Participant (admitted people, us included)
    floor: { mode: 'open', holder: null, queue_length: 0, position: null, queue: null, turn_ends_at: null, pass_to: null },
    pendingFloorMode: null, // facilitators: the mode just asked for, shown until the server answers
    locked: false,
    turnLimit: null,
    checkIn: null,         // {check_in, question, options} while one is open
    checkInResult: null,   // last result
    myCheckInAnswer: null, // index we sent for the open check-in
    waiting: [],           // facilitators: [Participant] in the waiting room
    speaking: new Set(),
    invited: false,
    helpRequests: [],      // facilitators: [{participant, name, note, at}]
    inviteAnswers: [],     // facilitators: [{participant, name, accepted, at}]
    leftNames: new Map(),  // id -> name, to name people in private messages after they left
    iceServers: [],
    resumeToken: null,
  };
}

export const isFacilitator = (s) => s.me?.role === 'facilitator';
export const isObserver = (s) => s.me?.role === 'observer';
export const iHoldStick = (s) => !!s.me && s.floor.holder === s.me.id;
export const nameOf = (s, id) => s.participants.get(id)?.name ?? s.waiting.find((p) => p.id === id)?.name ?? s.leftNames.get(id) ?? 'Someone who left';

/** The keys of a facilitator's private messages: the view lists them by it, Dismiss names it. */
export const privateKey = {
  help: (h) => `h${h.at}${h.participant}`,
  answer: (a) => `i${a.at}${a.participant}`,
};

/** 1 -> "1st", 2 -> "2nd", 3 -> "3rd", 11 -> "11th" ... */
export function ordinal(n) {
  const mod100 = n % 100;
  if (mod100 >= 11 && mod100 <= 13) return `${n}th`;
  return n + ({ 1: 'st', 2: 'nd', 3: 'rd' }[n % 10] ?? 'th');
}

function setFloor(state, floor, events) {
  const before = state.floor;
  const me = state.me?.id;
  state.floor = { pass_to: null, ...floor };
  if (me && floor.holder === me && before.holder !== me) events.push({ kind: 'stick-arrived' });
  if (me && before.holder === me && floor.holder !== me) events.push({ kind: 'stick-left' });
  if (floor.position === 1 && before.position !== 1) events.push({ kind: 'you-are-next' });
  if (floor.holder === me) state.invited = false;
  if (floor.mode !== before.mode) events.push({ kind: 'mode', mode: floor.mode });
  if (floor.holder !== before.holder) events.push({ kind: 'holder', holder: floor.holder ?? null });
}

function loadWelcome(state, msg) {
  state.phase = 'room';
  state.me = msg.you;
  state.resumeToken = msg.resume_token;
  state.iceServers = msg.ice_servers ?? [];
  const room = msg.room ?? {};
  state.roomId = room.id ?? null;
  state.participants = new Map((room.participants ?? []).map((p) => [p.id, p]));
  if (!state.participants.has(msg.you.id)) state.participants.set(msg.you.id, msg.you);
  state.floor = { pass_to: null, ...(room.floor ?? state.floor) };
  state.locked = !!room.locked;
  state.turnLimit = room.turn_limit ?? null;
  if (room.check_in?.check_in !== state.checkIn?.check_in) state.myCheckInAnswer = null;
  state.checkIn = room.check_in ?? null;
  state.speaking = new Set();
  if (msg.you.role !== 'facilitator') state.waiting = [];
}

export function applyMessage(state, msg) {
  const events = [];
  switch (msg.type) {
    case SERVER.welcome: {
      const wasWaiting = state.phase === 'waiting';
      const wasIn = state.phase === 'room';
      loadWelcome(state, msg);
      events.push({ kind: wasIn ? 'rewelcomed' : 'admitted', fromWaiting: wasWaiting });
      if (state.floor.holder === state.me.id) events.push({ kind: 'stick-arrived' });
      break;
    }
    case SERVER.resumed: // an extension of this server: the next resume token and fresh ICE servers
      state.resumeToken = msg.resume_token;
      state.iceServers = msg.ice_servers ?? state.iceServers;
      break;
    case SERVER.waiting:
      state.phase = 'waiting';
      events.push({ kind: 'waiting' });
      break;
    case SERVER.waiting_room: {
      // Only a longer list is announced: someone admitted or gone needs no words.
      const before = state.waiting.length;
      state.waiting = msg.waiting ?? [];
      events.push({ kind: 'waiting-room', grew: state.waiting.length > before });
      break;
    }
    case SERVER.participant_joined:
    case SERVER.participant_updated: {
      const p = msg.participant;
      const before = state.participants.get(p.id);
      if (!!before?.screen !== !!p.screen && (before || p.screen)) events.push({ kind: 'screen', participant: p.id, on: !!p.screen });
      state.participants.set(p.id, p);
      if (state.me && p.id === state.me.id) state.me = p;
      break;
    }
    case SERVER.participant_left: {
      const id = msg.participant;
      const p = state.participants.get(id);
      if (p) state.leftNames.set(id, p.name);
      state.participants.delete(id);
      state.speaking.delete(id);
      break;
    }
    case SERVER.floor:
      setFloor(state, msg, events);
      break;
    case SERVER.room_updated: // an extension of this server: the lock or the turn limit changed
      if (typeof msg.locked === 'boolean' && msg.locked !== state.locked) events.push({ kind: 'locked', locked: msg.locked });
      if (typeof msg.locked === 'boolean') state.locked = msg.locked;
      if ('turn_limit' in msg) state.turnLimit = msg.turn_limit ?? null;
      break;
    case SERVER.hand:
      events.push({ kind: 'hand', status: msg.status, position: msg.position ?? null });
      if (msg.status === 'queued' && msg.position != null) state.floor = { ...state.floor, position: msg.position };
      if (['cancelled', 'denied', 'granted'].includes(msg.status)) state.floor = { ...state.floor, position: null };
      break;
    case SERVER.invited_to_speak:
      state.invited = true;
      events.push({ kind: 'invited' });
      break;
    case SERVER.invite_answered:
      state.inviteAnswers.unshift({ participant: msg.participant, name: nameOf(state, msg.participant), accepted: msg.accepted, at: Date.now() });
      state.inviteAnswers.length = Math.min(state.inviteAnswers.length, 10);
      events.push({ kind: 'invite-answered', accepted: msg.accepted, participant: msg.participant });
      break;
    case SERVER.turn_warning:
      events.push({ kind: 'turn-warning', seconds: msg.seconds_left });
      break;
    case SERVER.reactions:
      events.push({ kind: 'reactions', counts: msg.counts ?? {} });
      break;
    case SERVER.help_requested:
      state.helpRequests.unshift({ participant: msg.participant, name: nameOf(state, msg.participant), note: msg.note ?? '', at: Date.now() });
      state.helpRequests.length = Math.min(state.helpRequests.length, 20);
      events.push({ kind: 'help', participant: msg.participant });
      break;
    case SERVER.check_in:
      if (state.checkIn?.check_in !== msg.check_in) state.myCheckInAnswer = null;
      state.checkIn = { check_in: msg.check_in, question: msg.question, options: msg.options };
      state.checkInResult = null;
      events.push({ kind: 'check-in' });
      break;
    case SERVER.check_in_result: {
      const open = state.checkIn && state.checkIn.check_in === msg.check_in ? state.checkIn : null;
      state.checkInResult = {
        check_in: msg.check_in,
        question: open?.question ?? state.checkInResult?.question ?? '',
        options: open?.options ?? [],
        counts: msg.counts ?? null,
        responses: msg.responses ?? 0,
      };
      if (open) state.checkIn = null;
      state.myCheckInAnswer = null;
      events.push({ kind: 'check-in-result' });
      break;
    }
    case SERVER.speaking:
      state.speaking = new Set(msg.participants ?? []);
      break;
    case SERVER.session_ended:
      state.phase = 'gone';
      events.push({ kind: 'ended', reason: msg.reason });
      break;
    case SERVER.removed:
      state.phase = 'gone';
      events.push({ kind: 'removed' });
      break;
    case SERVER.denied:
      state.phase = 'gone';
      events.push({ kind: 'denied' });
      break;
    default:
      break;
  }
  return events;
}

/**
 * The UI's own changes to the state. `action.kind`:
 * - 'prejoin-started': a fresh start (the first one, or Rejoin): everything forgotten;
 * - 'join-started': the person pressed Join; 'left': they pressed Leave;
 * - 'reconnecting' {on}: our own tile shows our reconnecting, the way the others see us;
 * - 'invite-answering': the invitation box goes away at once, before the server's ok;
 * - 'check-in-answered' {option}: the answer the server accepted, so the page can say it was sent;
 * - 'result-dismissed', 'private-dismissed' {key}: the person closed a result or a private message;
 * - 'mode-requested' {mode}, 'mode-request-done': the mode a facilitator asked for, held while the
 *   server answers, so that a render in between does not flip the switch back under their finger;
 * - 'turn-limit-set' {seconds}, 'lock-set' {locked}: applied on the server's ok, because protocol v1
 *   has no event for either (this server adds `room_updated`).
 */
export function applyAction(state, action) {
  const events = [];
  switch (action.kind) {
    case 'prejoin-started':
      Object.assign(state, emptyState());
      break;
    case 'join-started':
      state.phase = 'joining';
      break;
    case 'left':
      state.phase = 'gone';
      break;
    case 'reconnecting': {
      const me = state.me && state.participants.get(state.me.id);
      if (me) me.connection = action.on ? 'reconnecting' : 'connected';
      break;
    }
    case 'invite-answering':
      state.invited = false;
      break;
    case 'check-in-answered':
      state.myCheckInAnswer = action.option;
      break;
    case 'result-dismissed':
      state.checkInResult = null;
      break;
    case 'private-dismissed':
      state.helpRequests = state.helpRequests.filter((h) => privateKey.help(h) !== action.key);
      state.inviteAnswers = state.inviteAnswers.filter((a) => privateKey.answer(a) !== action.key);
      break;
    case 'mode-requested':
      state.pendingFloorMode = action.mode;
      break;
    case 'mode-request-done':
      state.pendingFloorMode = null;
      break;
    case 'turn-limit-set':
      state.turnLimit = action.seconds;
      break;
    case 'lock-set':
      if (state.locked !== action.locked) events.push({ kind: 'locked', locked: action.locked });
      state.locked = action.locked;
      break;
    default:
      throw new Error(`unknown action: ${action.kind}`);
  }
  return events;
}
