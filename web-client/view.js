// Drawing the room from the state: video tiles, the floor box, the facilitator's lists.
// Elements are kept by key and updated in place, so keyboard focus survives updates.

import { REACTIONS } from './protocol.js';
import { isFacilitator, isObserver, iHoldStick, nameOf, ordinal, privateKey } from './state.js';

export const $ = (id) => document.getElementById(id);

const ROLE_LABEL = { facilitator: 'Facilitator', member: 'Member', observer: 'Observer' };

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

/**
 * Keep `container`'s children in the order of `items`, reusing elements by key.
 * When the focused element is about to disappear, focus moves to a neighbouring row's first
 * control (or the `fallbackFocus` element) so a keyboard user is not thrown to the page top.
 */
export function syncList(container, items, keyOf, build, update, fallbackFocus) {
  const old = new Map([...container.children].map((c) => [c.dataset.key, c]));
  const keep = new Set(items.map(keyOf));
  const active = document.activeElement;
  let refocus = null;
  for (const [k, child] of old) {
    if (!keep.has(k) && child.contains(active)) {
      const sib = child.nextElementSibling ?? child.previousElementSibling;
      refocus = (sib && keep.has(sib.dataset.key) && sib.querySelector('button')) || fallbackFocus || null;
    }
  }
  items.forEach((item, i) => {
    const k = keyOf(item);
    let child = old.get(k);
    if (!child) { child = build(item); child.dataset.key = k; }
    old.delete(k);
    update(child, item);
    if (container.children[i] !== child) container.insertBefore(child, container.children[i] ?? null);
  });
  for (const child of old.values()) child.remove();
  if (refocus && document.activeElement === document.body) refocus.focus();
}

/** A row for one person: their name, then buttons that act on them (named e.g. "Admit"). */
function personRow(tag, nameText, buttons) {
  const nameId = nextId('who');
  const row = el(tag, { class: 'row' });
  const who = el('span', { class: 'who', id: nameId }, nameText);
  const actions = el('span', { class: 'actions' });
  for (const b of buttons) {
    // The button's name is the verb alone ("Admit"); the row's person describes it.
    b.setAttribute('aria-describedby', nameId);
    actions.append(b);
  }
  row.append(who, actions);
  return row;
}

// ---------------------------------------------------------------------------------------------
// Tiles

const tiles = new Map(); // participant id -> {root, video, audio, ...}

function buildTile(p) {
  const video = el('video', { autoplay: true, playsInline: true, muted: true });
  video.setAttribute('playsinline', '');
  const audio = el('audio', { autoplay: true });
  const avatar = el('div', { class: 'avatar', 'aria-hidden': 'true' });
  const stick = el('span', { class: 'badge stick' }, 'Has the talking stick');
  const speaking = el('span', { class: 'badge speaking' }, 'Speaking');
  const name = el('span', { class: 'tile-name' });
  const role = el('span', { class: 'tile-role' });
  const states = el('span', { class: 'tile-states' });
  const root = el('div', { class: 'tile', role: 'group', dataset: { participant: p.id } },
    video, audio, avatar,
    el('div', { class: 'tile-top' }, stick, speaking),
    el('div', { class: 'tile-bottom' }, name, role, states));
  return { root, video, audio, avatar, stick, speaking, name, role, states, stream: null };
}

function stateChips(p, s) {
  const chips = [];
  if (p.connection === 'reconnecting') chips.push(['reconnecting', 'Reconnecting…']);
  if (p.muted) chips.push(['muted-by', 'Muted by facilitator']);
  if (p.role !== 'observer') {
    if (!p.audio) chips.push(['mic-off', 'Mic off']);
    else if (s.floor.mode === 'stick' && p.role === 'member' && s.floor.holder !== p.id && !p.muted) chips.push(['held', 'Mic held by the room']);
    if (!p.video) chips.push(['cam-off', 'Camera off']);
  }
  return chips;
}

/** The existing tile of `p`, or a new one. */
function tileOf(p) {
  let t = tiles.get(p.id);
  if (!t) { t = buildTile(p); tiles.set(p.id, t); t.root.dataset.key = p.id; }
  return t;
}

function updateTile(s, media, localStream, p) {
  const t = tiles.get(p.id);
  const me = p.id === s.me?.id;
  const holder = s.floor.holder === p.id;
  const speaking = s.speaking.has(p.id);
  t.root.setAttribute('aria-label', `${p.name}${me ? ' (you)' : ''}`);
  t.root.classList.toggle('holder', holder);
  t.root.classList.toggle('is-speaking', speaking);
  t.root.classList.toggle('reconnecting', p.connection === 'reconnecting');
  t.name.textContent = me ? `${p.name} (you)` : p.name;
  t.role.textContent = p.role === 'member' ? '' : ROLE_LABEL[p.role];
  t.role.hidden = p.role === 'member';
  t.avatar.textContent = (p.name || '?').trim().charAt(0).toUpperCase();
  t.stick.hidden = !holder;
  t.speaking.hidden = !speaking;
  t.states.replaceChildren(...stateChips(p, s).map(([cls, text]) => el('span', { class: `chip ${cls}` }, text)));

  const stream = me ? localStream : media?.remote.get(p.id) ?? null;
  // Re-attach when the stream or its set of tracks changes (audio may arrive after video).
  const signature = stream ? stream.getTracks().map((tr) => tr.id).sort().join(',') : '';
  if (t.stream !== stream || t.signature !== signature) {
    t.stream = stream;
    t.signature = signature;
    t.video.srcObject = stream;
    if (!me) {
      t.audio.srcObject = stream;
      // Only NotAllowedError means the browser wants a tap first; an AbortError just means
      // this play() was superseded by a newer stream.
      if (stream) {
        t.audio.play().catch((e) => {
          if (e?.name === 'NotAllowedError') document.dispatchEvent(new CustomEvent('circle-autoplay-blocked'));
        });
      }
    }
  }
  // A tile moved between the grid and the spotlight keeps playing.
  if (stream && t.video.paused) t.video.play().catch(() => {});
  const hasVideo = !!stream && stream.getVideoTracks().length > 0;
  t.root.classList.toggle('show-video', hasVideo && p.video !== false && p.role !== 'observer');
}

/** Who shares a screen now (the one shown large), or null: the first sharer in the room's
 *  order. Our own share counts once our track is out. */
export function sharerOf(s, media) {
  for (const p of s.participants.values()) {
    if (!p.screen) continue;
    if (p.id === s.me?.id && !media?.screenTrack) continue;
    return p;
  }
  return null;
}

/** Whether the stick holder is shown large: stick mode, someone holds it, nobody shares a
 *  screen, and the person has not chosen the grid. */
export function spotlightOf(s, media, layout) {
  if (layout === 'grid' || s.floor.mode !== 'stick' || !s.floor.holder) return null;
  if (sharerOf(s, media)) return null;
  return s.participants.get(s.floor.holder) ?? null;
}

let screenTile = null;
function buildScreenTile() {
  const video = el('video', { autoplay: true, playsInline: true, muted: true });
  video.setAttribute('playsinline', '');
  const caption = el('span', { class: 'tile-name' });
  const root = el('div', { class: 'tile screen-tile', role: 'group' },
    video, el('div', { class: 'tile-bottom' }, caption));
  return { root, video, caption, stream: null };
}

/** The tiles: everyone in the grid, or, when a screen is shared or the stick holder is in the
 *  spotlight, that shown large in `focus` and the others in a strip beside it. */
export function renderTiles(s, media, localStream, layout) {
  const grid = $('grid');
  const focus = $('focus');
  const sharer = sharerOf(s, media);
  const spot = spotlightOf(s, media, layout);
  const people = [...s.participants.values()].filter((p) => p !== spot);
  // The grid first: a tile leaving it for the spotlight is taken out before it is put in.
  syncList(grid, people, (p) => p.id, (p) => tileOf(p).root, (root, p) => updateTile(s, media, localStream, p));
  if (sharer) {
    screenTile ??= buildScreenTile();
    const me = sharer.id === s.me?.id;
    const stream = me ? new MediaStream([media.screenTrack]) : media?.screens.get(sharer.id) ?? null;
    const trackIds = stream ? stream.getTracks().map((t) => t.id).join(',') : '';
    if (screenTile.trackIds !== trackIds) { screenTile.trackIds = trackIds; screenTile.video.srcObject = stream; }
    screenTile.caption.textContent = me ? 'You are sharing your screen' : `${sharer.name} is sharing their screen`;
    screenTile.root.setAttribute('aria-label', screenTile.caption.textContent);
    screenTile.root.dataset.sharer = sharer.id;
    screenTile.root.dataset.key = `screen:${sharer.id}`;
    if (focus.firstChild !== screenTile.root || focus.children.length !== 1) focus.replaceChildren(screenTile.root);
  } else if (spot) {
    syncList(focus, [spot], (p) => p.id, (p) => tileOf(p).root, (root, p) => updateTile(s, media, localStream, p));
  } else if (focus.children.length) {
    focus.replaceChildren();
  }
  focus.hidden = !sharer && !spot;
  const stage = $('stage');
  stage.classList.toggle('has-focus', !!(sharer || spot));
  stage.dataset.layout = sharer ? 'screen' : spot ? 'spotlight' : 'grid';
  const canSpotlight = !sharer && s.floor.mode === 'stick' && !!s.floor.holder;
  const switcher = $('btn-layout');
  switcher.hidden = !canSpotlight;
  switcher.textContent = spot ? 'Show everyone' : 'Spotlight the speaker';
  for (const id of [...tiles.keys()]) if (!s.participants.has(id)) tiles.delete(id);
  grid.dataset.count = String(people.length);
  layoutGrid();
}

/** The height (device pixels, in steps of 10) at which each other participant's camera is
 *  shown now, 0 where it is not: for `tile_sizes`, so the server sends each the layer that fits. */
export function tileHeights(s) {
  const out = new Map();
  for (const p of s.participants.values()) {
    if (p.id === s.me?.id) continue;
    const t = tiles.get(p.id);
    const shown = !!t && t.root.isConnected && t.root.classList.contains('show-video');
    const h = shown ? t.video.getBoundingClientRect().height * (window.devicePixelRatio || 1) : 0;
    out.set(p.id, Math.ceil(h / 10) * 10);
  }
  return out;
}

/** Choose the number of columns that makes 16:9 tiles as large as possible in the stage. */
export function layoutGrid() {
  const grid = $('grid');
  const n = Math.max(1, grid.children.length);
  const W = grid.clientWidth, H = grid.clientHeight;
  if (!W || !H) return;
  const gap = 8;
  let best = { cols: 1, w: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const w = Math.min((W - gap * (cols - 1)) / cols, ((H - gap * (rows - 1)) / rows) * 16 / 9);
    if (w > best.w) best = { cols, w };
  }
  grid.style.setProperty('--cols', best.cols);
  grid.style.setProperty('--tile-w', `${Math.floor(best.w)}px`);
}

// ---------------------------------------------------------------------------------------------
// The person's own floor box

export function floorSummary(s) {
  const f = s.floor;
  if (f.mode === 'open') {
    return f.holder ? `Open floor. ${nameOf(s, f.holder)} has the talking stick.` : 'Open floor: everyone may speak.';
  }
  const waiting = f.queue_length ? ` ${f.queue_length} waiting to speak.` : '';
  if (!f.holder) return `Talking stick mode. Nobody has the stick.${waiting}`;
  const who = f.holder === s.me?.id ? 'You have' : `${nameOf(s, f.holder)} has`;
  return `Talking stick mode. ${who} the stick.${waiting}`;
}

export function formatLeft(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(total / 60), sec = total % 60;
  return `${m}:${String(sec).padStart(2, '0')}`;
}

export function renderMyFloor(s, actions) {
  const member = s.me?.role === 'member';
  const holding = iHoldStick(s);
  $('floor-summary').textContent = floorSummary(s);
  $('stick-box').hidden = !holding;
  $('invite-box').hidden = holding || !s.invited;
  $('hand-box').hidden = !member || holding || s.invited;
  const queued = s.floor.position != null;
  $('btn-raise').hidden = queued;
  $('hand-note-row').hidden = queued;
  $('btn-lower').hidden = !queued;
  $('hand-position').textContent = queued
    ? (s.floor.position === 1 ? 'You are 1st in line: you’re next.' : `You are ${ordinal(s.floor.position)} in line`)
    : '';
  $('hand-position').hidden = !queued;
  updateCountdown(s);

  // Passing the stick: the server tells the holder who is waiting (FloorState.pass_to).
  const passTo = holding && Array.isArray(s.floor.pass_to) ? s.floor.pass_to : [];
  $('pass-box').hidden = passTo.length === 0;
  syncList($('pass-list'), passTo, (id) => id, (id) => {
    const b = el('button', { type: 'button', onclick: () => actions.passTo(id) }, 'Pass the stick');
    return personRow('li', nameOf(s, id), [b]);
  }, (li, id) => { li.querySelector('.who').textContent = nameOf(s, id); }, $('btn-done'));
}

export function updateCountdown(s) {
  const ends = s.floor.turn_ends_at;
  const text = ends ? `${formatLeft(ends - Date.now())} left in your turn` : 'No time limit';
  const cd = $('stick-countdown');
  if (cd.textContent !== text) cd.textContent = text;
  cd.classList.toggle('ending', !!ends && ends - Date.now() <= 10_000);
  const fh = $('fac-holder');
  if (isFacilitator(s)) {
    const h = s.floor.holder;
    const t = h ? `${nameOf(s, h)} has the stick${ends ? ` (${formatLeft(ends - Date.now())} left)` : ''}.` : 'Nobody has the stick.';
    if (fh.textContent !== t) fh.textContent = t;
  }
}

// ---------------------------------------------------------------------------------------------
// Check-in

export function renderCheckIn(s, actions) {
  const open = s.checkIn;
  const canAnswer = s.me?.role === 'member';
  $('checkin-answer').hidden = !open || !canAnswer;
  if (open && canAnswer) {
    $('checkin-q').textContent = open.question;
    const box = $('checkin-options');
    if (box.dataset.checkIn !== String(open.check_in)) {
      box.dataset.checkIn = String(open.check_in);
      box.replaceChildren(...open.options.map((o, i) => {
        const id = `checkin-opt-${i}`;
        return el('div', { class: 'radio' },
          el('input', { type: 'radio', name: 'checkin', id, value: String(i) }),
          el('label', { for: id }, o));
      }));
    }
    $('checkin-answered').textContent = s.myCheckInAnswer != null
      ? 'Your answer was sent anonymously. You can change it until the check-in closes.'
      : 'Nobody will see which answer is yours.';
  }
  const r = s.checkInResult;
  const res = $('checkin-result');
  res.hidden = !r;
  if (r) {
    const items = r.counts
      ? r.options.length === r.counts.length
        ? r.options.map((o, i) => el('li', {}, `${o}: ${r.counts[i]}`))
        : r.counts.map((c, i) => el('li', {}, `Option ${i + 1}: ${c}`))
      : [];
    res.replaceChildren(
      el('h2', { class: 'box-title' }, 'Check-in result'),
      r.question ? el('p', {}, r.question) : null,
      r.counts
        ? el('ul', { class: 'result' }, ...items)
        : el('p', {}, `${r.responses} answered. To keep every answer anonymous, counts are not shown this time: too few answered, or the answers were too alike to hide anyone's.`),
      r.counts ? el('p', { class: 'muted' }, `${r.responses} answered.`) : null,
      el('button', { type: 'button', onclick: actions.dismissResult }, 'Dismiss'),
    );
  }
  // Facilitator's start/close form.
  $('checkin-form').hidden = !!open;
  $('checkin-open').hidden = !open;
  if (open) $('checkin-open-q').textContent = `Open: ${open.question}`;
}

// ---------------------------------------------------------------------------------------------
// Facilitator panel

export function renderFacilitator(s, actions) {
  const fac = isFacilitator(s);
  $('facilitator-panel').hidden = !fac;
  if (!fac) return;

  // Waiting room
  const waiting = s.waiting;
  $('waiting-count').textContent = waiting.length ? `(${waiting.length})` : '';
  $('waiting-empty').hidden = waiting.length > 0;
  $('btn-admit-all').hidden = waiting.length < 2;
  syncList($('waiting-list'), waiting, (p) => p.id, (p) => personRow('li', p.name, [
    el('button', { type: 'button', class: 'primary', onclick: () => actions.admit(p.id) }, 'Admit'),
    el('button', { type: 'button', onclick: () => actions.deny(p.id) }, 'Deny'),
  ]), (li, p) => { li.querySelector('.who').textContent = p.role === 'observer' ? `${p.name} (observer)` : p.name; }, $('waiting-title'));

  // Floor
  $('switch-stick').checked = (s.pendingFloorMode ?? s.floor.mode) === 'stick';
  $('btn-revoke').disabled = !s.floor.holder;
  const queue = s.floor.queue ?? [];
  $('btn-grant-next').disabled = queue.length === 0;
  $('queue-empty').hidden = queue.length > 0;
  syncList($('queue-list'), queue, (q) => q.participant, (q) => {
    const row = personRow('li', '', [
      el('button', { type: 'button', class: 'primary', onclick: () => actions.grant(q.participant) }, 'Give the stick'),
      el('button', { type: 'button', onclick: () => actions.lowerHand(q.participant) }, 'Lower hand'),
    ]);
    row.querySelector('.who').append(el('span', { class: 'qname' }), el('span', { class: 'note' }));
    return row;
  }, (li, q) => {
    li.querySelector('.qname').textContent = nameOf(s, q.participant);
    const note = li.querySelector('.note');
    note.textContent = q.note ? `“${q.note}”` : '';
    note.hidden = !q.note;
  }, $('floor-title'));

  // People
  const others = [...s.participants.values()].filter((p) => p.id !== s.me.id);
  syncList($('people-list'), others, (p) => p.id, (p) => {
    const buttons = [];
    if (p.role === 'member') {
      buttons.push(el('button', { type: 'button', class: 'give', onclick: () => actions.grant(p.id) }, 'Give the stick'));
      buttons.push(el('button', { type: 'button', class: 'invite', onclick: () => actions.invite(p.id) }, 'Invite to speak'));
    }
    if (p.role !== 'observer' && p.role !== 'facilitator') {
      buttons.push(el('button', { type: 'button', class: 'mute', onclick: (ev) => actions.toggleMute(p.id, ev.currentTarget) }, 'Mute'));
    }
    if (p.role !== 'facilitator') {
      buttons.push(el('button', { type: 'button', class: 'danger remove', onclick: () => actions.remove(p.id) }, 'Remove'));
    }
    const row = personRow('li', '', buttons);
    row.querySelector('.who').append(el('span', { class: 'pname' }), el('span', { class: 'pstate' }));
    return row;
  }, (li, p) => {
    li.querySelector('.pname').textContent = p.name;
    const bits = [];
    if (p.role !== 'member') bits.push(ROLE_LABEL[p.role]);
    if (s.floor.holder === p.id) bits.push('has the stick');
    bits.push(...stateChips(p, s).map(([, t]) => t));
    li.querySelector('.pstate').textContent = bits.length ? ` · ${bits.join(' · ')}` : '';
    const mute = li.querySelector('.mute');
    if (mute) mute.textContent = p.muted ? 'Unmute' : 'Mute';
    const give = li.querySelector('.give');
    if (give) give.hidden = s.floor.holder === p.id;
    const invite = li.querySelector('.invite');
    if (invite) invite.hidden = s.floor.holder === p.id;
  }, $('people-title'));

  // Session
  $('btn-lock').setAttribute('aria-pressed', String(s.locked));
  $('btn-lock').classList.toggle('on', s.locked);
  const tl = $('turn-limit');
  if (document.activeElement !== tl && tl.dataset.userEdited !== '1') tl.value = s.turnLimit ?? '';

  // Private messages: help requests and invitation answers.
  const msgs = [
    ...s.helpRequests.map((h) => ({ key: privateKey.help(h), text: `${h.name} asked for the facilitator${h.note ? `: “${h.note}”` : '.'}`, cls: 'help' })),
    ...s.inviteAnswers.map((a) => ({ key: privateKey.answer(a), text: `${a.name} ${a.accepted ? 'accepted' : 'passed on'} your invitation to speak.`, cls: 'answer' })),
  ];
  $('help-box').hidden = msgs.length === 0;
  syncList($('help-list'), msgs, (m) => m.key, (m) => {
    const li = el('li', { class: `row ${m.cls}` }, el('span', { class: 'who' }, m.text));
    li.append(el('span', { class: 'actions' }, el('button', { type: 'button', onclick: () => actions.dismissPrivate(m.key) }, 'Dismiss')));
    return li;
  }, () => {}, $('floor-title'));
}

// ---------------------------------------------------------------------------------------------
// Reactions

let summaryTimer = null;
export function showReactions(counts, reducedMotion) {
  const entries = Object.entries(counts).filter(([k, n]) => REACTIONS[k] && n > 0);
  if (entries.length === 0) return;
  const float = $('reactions-float');
  for (const [k, n] of entries) {
    const b = el('div', { class: 'bubble' }, `${REACTIONS[k].emoji} ${n}`);
    b.style.left = `${5 + Math.random() * 60}%`;
    float.append(b);
    setTimeout(() => b.remove(), reducedMotion ? 4000 : 3200);
  }
  const sum = $('reaction-summary');
  sum.hidden = false;
  sum.replaceChildren(el('span', { class: 'muted' }, 'Reactions: '), ...entries.map(([k, n]) =>
    el('span', { class: 'rcount', dataset: { kind: k } }, el('span', { 'aria-hidden': 'true' }, REACTIONS[k].emoji), ` ${REACTIONS[k].label} ${n}`)));
  clearTimeout(summaryTimer);
  summaryTimer = setTimeout(() => { sum.hidden = true; }, 8000);
}
