// The web client's protocol names (web-client/protocol.js) against the protocol's own record of
// them: the golden messages in protocol/golden/{server,client}/*.json and the ReactionKind enum in
// protocol/src/lib.rs. No server and no browser: a renamed or misspelled type fails here, not in a
// session. The other web-client modules must use those names, not copies of the strings, and only
// names the module has (a misspelled `SERVER.welcom` would otherwise only throw at run time).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const webClient = join(root, 'web-client');
const golden = join(root, 'protocol', 'golden');

// protocol.js has no imports, so it loads on its own (as a data: URL, since web-client/ has no
// package.json saying its .js files are modules).
async function loadProtocol() {
  const src = readFileSync(join(webClient, 'protocol.js'), 'utf8');
  return import(`data:text/javascript;base64,${Buffer.from(src).toString('base64')}`);
}

function goldenMessages(side) {
  const dir = join(golden, side);
  return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => ({ file: f, msg: JSON.parse(readFileSync(join(dir, f), 'utf8')) }));
}
const typesOf = (side) => new Set(goldenMessages(side).map(({ msg }) => msg.type));
const sorted = (xs) => [...xs].sort();

/** ReactionKind's variants as serde writes them (rename_all = "snake_case"). */
function reactionKindsInRust() {
  const src = readFileSync(join(root, 'protocol', 'src', 'lib.rs'), 'utf8');
  const m = src.match(/#\[serde\(rename_all = "snake_case"\)\]\s*pub enum ReactionKind \{([^}]*)\}/);
  assert.ok(m, 'protocol/src/lib.rs has a snake_case `pub enum ReactionKind`');
  return m[1].split('\n').map((l) => l.replace(/\/\/.*$/, '').trim().replace(/,$/, '')).filter(Boolean)
    .map((v) => v.replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase());
}

test('the client knows every server message type of the golden set, and no other', async () => {
  const { SERVER } = await loadProtocol();
  const gold = typesOf('server');
  assert.ok(gold.size >= 20, `golden server messages found (${gold.size})`);
  assert.deepEqual(sorted(Object.values(SERVER)), sorted(gold));
  for (const [k, v] of Object.entries(SERVER)) assert.equal(k, v, 'each name is its own key');
});

test('every client message type the client sends is in the golden set', async () => {
  const { CLIENT } = await loadProtocol();
  const gold = typesOf('client');
  assert.ok(gold.size >= 20, `golden client messages found (${gold.size})`);
  const unknown = Object.values(CLIENT).filter((t) => !gold.has(t));
  assert.deepEqual(unknown, [], 'client message types missing from protocol/golden/client');
  for (const [k, v] of Object.entries(CLIENT)) assert.equal(k, v, 'each name is its own key');
});

test('the reaction kinds are exactly the protocol ReactionKind, and the page has a button for each', async () => {
  const { REACTIONS } = await loadProtocol();
  const kinds = Object.keys(REACTIONS);
  const rust = reactionKindsInRust();
  assert.deepEqual(rust, ['heart', 'applause', 'support', 'thanks', 'me_too', 'laugh']);
  assert.deepEqual(kinds, rust);
  // The golden messages that carry a kind use only these.
  for (const { file, msg } of goldenMessages('client')) {
    if (msg.type === 'react') assert.ok(kinds.includes(msg.kind), `${file}: kind ${msg.kind}`);
  }
  for (const { file, msg } of goldenMessages('server')) {
    if (msg.type === 'reactions') for (const k of Object.keys(msg.counts)) assert.ok(kinds.includes(k), `${file}: kind ${k}`);
  }
  for (const { label, emoji } of Object.values(REACTIONS)) assert.ok(label && emoji);
  // index.html's buttons (static markup, for the strict CSP) in the same order and words.
  const html = readFileSync(join(webClient, 'index.html'), 'utf8');
  const buttons = [...html.matchAll(/class="reaction" data-kind="([a-z_]+)">.*?<span class="rlabel">([^<]*)<\/span>/g)].map((m) => [m[1], m[2]]);
  assert.deepEqual(buttons, Object.entries(REACTIONS).map(([k, r]) => [k, r.label]));
});

test('the other modules use the names module, with names it has, and copy no message type', async () => {
  const { SERVER, CLIENT } = await loadProtocol();
  // (`type: 'button'` is an element's type, not a message's.)
  const messageTypes = new Set([...typesOf('server'), ...typesOf('client')]);
  const files = readdirSync(webClient).filter((f) => f.endsWith('.js') && f !== 'protocol.js');
  const problems = [];
  for (const f of files) {
    const src = readFileSync(join(webClient, f), 'utf8');
    for (const [, table, name] of src.matchAll(/\b(SERVER|CLIENT)\.([A-Za-z_]+)/g)) {
      if (!Object.keys(table === 'SERVER' ? SERVER : CLIENT).includes(name)) problems.push(`${f}: ${table}.${name} is not a known name`);
    }
    // Message types spelled out where a type is compared, matched on or sent.
    for (const m of src.matchAll(/(?:\.type\s*[!=]==\s*|\btype:\s*|(?:ask|request|send)\()'([a-z_]+)'/g)) if (messageTypes.has(m[1])) problems.push(`${f}: '${m[1]}' copied (use protocol.js)`);
    // A switch on a message's type: the functions that take server messages.
    for (const fn of ['applyMessage', 'onMessage']) {
      const at = src.search(new RegExp(`function ${fn}\\b`));
      if (at < 0) continue;
      const end = src.indexOf('\n}\n', at);
      for (const m of src.slice(at, end).matchAll(/case '([a-z_]+)':/g)) problems.push(`${f}: ${fn}: case '${m[1]}' copied (use protocol.js)`);
    }
  }
  assert.deepEqual(problems, []);
});
