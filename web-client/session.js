// What this tab holds for the person's stay: the state, the connection, the media, the local
// camera and microphone with the person's choices for them, and the join link's token.
//
// The other modules share these live objects through `session` (they replace the connection,
// the media and the stream as the stay goes on). `session.state` itself is never replaced and
// never written here or by the UI: only state.js's reducer changes it (through dispatch.js).

import { emptyState } from './state.js';

const LAYOUT_KEY = 'circle.layout';

export const session = {
  conn: null,
  media: null,
  token: null,
  claims: null,
  localStream: new MediaStream(),
  // `layout`: 'spotlight' (the stick holder large, in stick mode) or 'grid', remembered.
  prefs: { audio: true, video: true, audioDeviceId: '', videoDeviceId: '', layout: readLayout() },
  mediaState: { state: 'idle', detail: '' },
  stopMeter: () => {},
  previewReady: Promise.resolve(),
  countdownTimer: null,
};
// Read-only, so that a stray `session.state = ...` fails instead of splitting the state in two.
Object.defineProperty(session, 'state', { value: emptyState(), enumerable: true, writable: false });

function readLayout() {
  try { return localStorage.getItem(LAYOUT_KEY) === 'grid' ? 'grid' : 'spotlight'; } catch { return 'spotlight'; }
}
/** Remember the person's choice of layout for their next visit. */
export function saveLayout(layout) {
  session.prefs.layout = layout;
  try { localStorage.setItem(LAYOUT_KEY, layout); } catch { /* storage may be disabled */ }
}

/** Stop everything that runs for the stay: the mic meter, media, the camera, the countdown. */
export function teardown() {
  session.stopMeter();
  session.stopMeter = () => {};
  session.media?.stopAll();
  session.media = null;
  for (const t of session.localStream.getTracks()) t.stop();
  session.localStream = new MediaStream();
  clearInterval(session.countdownTimer);
}

// The token leaves the address bar at once (so it is not shared by a copied URL, a screenshot
// or the history), but stays in this tab's sessionStorage: someone who reloads by mistake can
// join again (the server keeps their stick and place for a new hello with the same identity).
// The storage is per tab and is cleared when the session is over for them.
const TOKEN_KEY = 'circle.token';
export function readToken() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const t = params.get('token');
  if (t) {
    history.replaceState(null, '', location.pathname + location.search);
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch { /* storage may be disabled */ }
    return t;
  }
  try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
}
export function forgetToken() {
  try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* ignore */ }
}

export function decodeClaims(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
    return JSON.parse(json);
  } catch {
    return null;
  }
}
