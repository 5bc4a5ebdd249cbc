// The names this client shares with the server: message types both ways, and the reaction kinds.
// Every other module uses these instead of copying the strings, and
// tests/browser/protocol-names.test.mjs checks them against protocol/golden and
// protocol/src/lib.rs, so a misspelled or renamed type fails a test instead of a session.
//
// No imports and no DOM: the node test loads this file on its own.

/** A frozen name -> name table that throws on an unknown name, so `SERVER.welcom` fails loudly
 *  (an `undefined` type would silently match nothing and send nothing useful). */
function names(list) {
  const table = Object.freeze(Object.fromEntries(list.map((n) => [n, n])));
  return new Proxy(table, {
    get(t, key) {
      if (typeof key === 'string' && !(key in t)) throw new Error(`unknown message type: ${key}`);
      return t[key];
    },
  });
}

/** Server -> client message types (all of them: the connection, the reducer or media handle each). */
export const SERVER = names([
  'welcome', 'resumed', 'waiting', 'waiting_room', 'denied', 'removed', 'session_ended',
  'ok', 'error', 'pong',
  'participant_joined', 'participant_updated', 'participant_left',
  'floor', 'hand', 'room_updated', 'turn_warning', 'speaking', 'reactions',
  'invited_to_speak', 'invite_answered', 'help_requested',
  'check_in', 'check_in_result',
  'sdp', 'ice',
]);

/** Client -> server message types this client sends. */
export const CLIENT = names([
  'hello', 'resume', 'ping', 'leave',
  'set_media', 'tile_sizes', 'sdp', 'ice',
  'raise_hand', 'lower_hand', 'release_floor', 'pass_floor', 'answer_invite',
  'react', 'need_help', 'answer_check_in',
  'admit', 'admit_all', 'deny', 'grant_floor', 'grant_next', 'revoke_floor', 'invite_to_speak',
  'mute', 'unmute', 'remove', 'set_floor_mode', 'set_turn_limit', 'lock_room', 'end_session',
  'start_check_in', 'close_check_in',
]);

/** The fixed set of anonymous reactions (protocol ReactionKind), in the order of the buttons,
 *  with the words and emoji the page shows for each. */
export const REACTIONS = Object.freeze({
  heart: { label: 'Heart', emoji: '❤️' },
  applause: { label: 'Applause', emoji: '👏' },
  support: { label: 'Support', emoji: '🤝' },
  thanks: { label: 'Thanks', emoji: '🙏' },
  me_too: { label: 'Me too', emoji: '🙋' },
  laugh: { label: 'Laugh', emoji: '😊' },
});
