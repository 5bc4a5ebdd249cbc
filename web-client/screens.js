// Which screen shows, and the page's voice: the live-region announcer, toasts, and the final or
// blocking message screen with its texts.

import { $ } from './view.js';
import { teardown, forgetToken } from './session.js';

const SCREENS = ['screen-loading', 'screen-prejoin', 'screen-waiting', 'screen-message', 'screen-room'];
export function show(screen) {
  for (const id of SCREENS) $(id).hidden = id !== screen;
  document.body.dataset.screen = screen;
}

let announceTimer = null;
/** Say something through the live region (re-announces identical text too). */
export function announce(text) {
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
export function toast(text, ms = 5000) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, ms);
}

/** Takes a toast down early if it still says `text` (a refusal that no longer holds). */
export function withdrawToast(text) {
  const t = $('toast');
  if (t.hidden || t.textContent !== text) return;
  clearTimeout(toastTimer);
  t.hidden = true;
}

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

/** A final or blocking message. `rejoin` adds a button that starts over with the same link. */
export function showMessage(title, text, { rejoin = null } = {}) {
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

// Texts shown from more than one place.
export const DENIED = ['You could not be let in this time', 'The facilitator did not admit you to this session. Please contact your clinic if you have questions.'];
export const EXPIRED = ['This link has expired', 'Join links work for a limited time. Please ask your clinic or facilitator for a new link.'];
export const REMOVED = ['You were removed from this session', 'A facilitator removed you from this session. If this is unexpected, please contact your clinic.'];
export const LEFT = ['You left the session', 'Thank you for being here. If you left by mistake, you can come back.'];
