// Circle's browser client: the entry point. It reads the join link and starts the pre-join
// screen (or says why it cannot); the modules do the rest:
//
// - protocol.js: message type names and reaction kinds shared with the server;
// - state.js: the room as we know it, and its one writer (server messages and the UI's actions);
// - session.js: this tab's live objects (state, connection, media, local stream, token);
// - dispatch.js: messages and actions into the state, and what follows (screens, announcements);
// - screens.js: which screen shows, announcements, toasts, the message screen;
// - prejoin.js: the pre-join screen and Join; room.js: the room screen, its media, drawing it;
// - controls.js: what the room's buttons do;
// - connection.js (WebSocket, resume), media.js (camera, microphone, peer connections),
//   view.js (drawing the room).
// Nothing here logs names or tokens.

import { session, readToken, decodeClaims } from './session.js';
import { showMessage } from './screens.js';
import { startPrejoin } from './prejoin.js';
import { onRestart } from './dispatch.js';
import { useActions } from './room.js';
import { actions } from './controls.js'; // also wires the room's buttons

onRestart(startPrejoin);
useActions(actions);

// For tests and for curious developers: the live objects (never the token).
window.circle = {
  get state() { return session.state; },
  get conn() { return session.conn; },
  get media() { return session.media; },
  get ws() { return session.conn?.ws ?? null; },
};

session.token = readToken();
session.claims = session.token ? decodeClaims(session.token) : null;
if (!session.token) {
  showMessage('Please use your join link', 'Circle opens from the personal link your clinic sent you. Open that link to join your group.');
} else if (!session.claims) {
  showMessage('This link does not work', 'The link seems to be incomplete. Please copy the whole link, or ask your clinic for a new one.');
} else {
  startPrejoin();
}
