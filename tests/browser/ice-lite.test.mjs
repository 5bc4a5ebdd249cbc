// The server is an ICE-lite agent: it sends no connectivity checks of its own and knows a path is
// alive only from the browser's checks. Chromium nominates a second candidate pair when it finds
// a better one (here: its loopback and its LAN address both reach the server) and then checks the
// first only every 25 s. The server must follow the newest nomination, or it sees its connection
// `disconnected` every 25 s and `failed` after one lost check (server/vendor/rtc-ice's patch).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openPerson, joinRoom, waitFor, inboundGrowth, mediaSkipped, LAPTOP,
} from './helpers.mjs';

test('every peer connection stays connected while browsers settle on their preferred path', { timeout: 120_000, skip: mediaSkipped() }, async (t) => {
  // The room's task logs each peer connection state change at debug: that is what is read here.
  process.env.RUST_LOG = 'info,circle_server::room::actor=debug';
  const server = await startServer(t, { args: ['--waiting-room', 'off'] });
  const browser = await launchBrowser(t);
  const people = [];
  for (const [sub, role, name] of [['f-1', 'facilitator', 'Sam'], ['m-1', 'member', 'River'], ['m-2', 'member', 'Jo']]) {
    const p = await openPerson(browser, server, { sub, role, name }, { viewport: LAPTOP });
    await joinRoom(p);
    people.push(p);
  }
  const states = () => server.logs.join('').split('\n').filter((l) => l.includes('peer connection state'));
  // Three participants, two connections each.
  await waitFor(() => states().filter((l) => l.includes('connected=true')).length >= 6,
    { timeout: 30_000, what: 'all six peer connections to come up' });
  // Without following the newest nomination, the first `disconnected` came 5 s after connecting.
  await new Promise((r) => setTimeout(r, 15_000));
  const down = states().filter((l) => l.includes('connected=false'));
  assert.deepEqual(down, [], 'a peer connection went down while every browser was still there');
  // And media flows both ways all the while.
  for (const p of people) {
    const growth = await inboundGrowth(p.page);
    assert.equal(Object.keys(growth).length, 2, `${p.name} receives from both others`);
    for (const [from, g] of Object.entries(growth)) {
      assert.ok(g.video > 0 && g.audio > 0, `${p.name} stopped receiving from ${from}: ${JSON.stringify(g)}`);
    }
  }
});
