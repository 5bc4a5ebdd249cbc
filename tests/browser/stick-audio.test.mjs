// In stick mode a member's audio stops arriving at the others until the facilitator gives them the
// stick, and stops again when they are done. The gate is the server's media path: we watch
// inbound audio packets per track in the other browsers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openPerson, joinRoom, rowOf, screenshot, waitFor, inboundStats,
  inboundGrowth, mediaSkipped, LAPTOP, PHONE,
} from './helpers.mjs';

// Opus sends 50 packets a second; over 2 s a forwarded track grows by ~100, a gated one by ~0.
const FLOWING = 30;
const STOPPED = 5;

async function audioFrom(listener, speakerId, ms = 2000) {
  const g = await inboundGrowth(listener.page, ms);
  return g[speakerId]?.audio ?? 0;
}

/** Wait until `speaker`'s audio is flowing (or stopped) at every listener. */
async function expectAudio(listeners, speakerId, flowing, what) {
  for (const l of listeners) {
    await waitFor(async () => {
      const n = await audioFrom(l, speakerId, 1500);
      return flowing ? n >= FLOWING * 0.75 : n <= STOPPED;
    }, { timeout: 20_000, interval: 100, what: `${what} at ${l.name}` });
  }
}

test('in stick mode a member is heard only while holding the stick', { timeout: 180_000, skip: mediaSkipped() }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off'] });
  const browser = await launchBrowser(t);

  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac);
  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: PHONE });
  await joinRoom(river);
  const jo = await openPerson(browser, server, { sub: 'm-2', role: 'member', name: 'Jo' }, { viewport: LAPTOP });
  await joinRoom(jo);

  // Wait until media flows at all (open floor: everybody is heard).
  for (const [p, others] of [[fac, ['m-1', 'm-2']], [jo, ['f-1', 'm-1']]]) {
    await waitFor(async () => {
      const s = await inboundStats(p.page);
      return others.every((id) => s[id]?.audioPackets > 0);
    }, { timeout: 45_000, interval: 500, what: `audio at ${p.name} from ${others}` });
  }
  await expectAudio([fac, jo], 'm-1', true, 'River heard on the open floor');

  // Talking stick mode: River is no longer forwarded; the facilitator still is.
  await fac.page.getByRole('switch', { name: 'Talking stick mode' }).check();
  await river.page.getByText('Your microphone is held by the room until the talking stick comes to you.').waitFor();
  await expectAudio([fac, jo], 'm-1', false, 'River silent without the stick');
  assert.ok(await audioFrom(jo, 'f-1') >= FLOWING, 'the facilitator is heard in stick mode');
  await screenshot(river, 'stick-audio-river-held-phone');

  // The facilitator gives River the stick from River's row: River is heard again.
  await rowOf(fac.page, 'People', 'River').getByRole('button', { name: 'Give the stick' }).click();
  await river.page.getByText('You have the talking stick', { exact: true }).waitFor();
  await expectAudio([fac, jo], 'm-1', true, 'River heard with the stick');
  // Jo, without the stick, stays silent.
  assert.ok(await audioFrom(fac, 'm-2') <= STOPPED, 'Jo is not heard without the stick');
  await screenshot(river, 'stick-audio-river-holds-phone');
  await screenshot(fac, 'stick-audio-facilitator-laptop');

  // River is done: silent again.
  await river.page.getByRole('button', { name: 'Done speaking' }).click();
  await river.page.getByRole('button', { name: 'Raise hand' }).waitFor();
  await expectAudio([fac, jo], 'm-1', false, 'River silent after done speaking');

  for (const p of [fac, river, jo]) p.checkConsole();
});
