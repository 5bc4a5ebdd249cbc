// A facilitator and two members join; the members wait and are admitted; every browser decodes
// video frames from both others and receives their audio (getStats on the subscribe connection).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openPerson, joinRoom, clickJoin, waitWaiting, rowOf, screenshot,
  waitFor, inboundStats, inboundGrowth, mediaSkipped, LAPTOP, PHONE,
} from './helpers.mjs';

test('members wait, are admitted, and everyone sees and hears both others', { timeout: 150_000, skip: mediaSkipped() }, async (t) => {
  const server = await startServer(t);
  const browser = await launchBrowser(t);

  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  // The pre-join screen: preview, level meter, devices, the name, the confidentiality notice.
  await fac.page.getByText('This session is not recorded; what is said here stays here.').waitFor();
  await fac.page.getByLabel('Camera', { exact: true }).waitFor();
  await fac.page.getByLabel('Microphone', { exact: true }).waitFor();
  await fac.page.getByRole('meter', { name: 'Microphone level' }).waitFor();
  assert.equal(await fac.page.locator('#prejoin-name').innerText(), 'Sam');
  // The token left the address bar.
  assert.equal(new URL(fac.page.url()).hash, '');
  await waitFor(() => fac.page.evaluate(() => document.getElementById('preview-video').videoWidth > 0), { what: 'the camera preview' });
  await screenshot(fac, 'admission-prejoin-laptop');
  await joinRoom(fac);

  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: PHONE });
  await screenshot(river, 'admission-prejoin-phone');
  await clickJoin(river);
  await waitWaiting(river);
  await screenshot(river, 'admission-waiting-phone');

  const jo = await openPerson(browser, server, { sub: 'm-2', role: 'member', name: 'Jo' }, { viewport: LAPTOP });
  await clickJoin(jo);
  await waitWaiting(jo);

  // The facilitator sees both in the waiting room, each with Admit and Deny in their row.
  await rowOf(fac.page, 'Waiting room', 'River').getByRole('button', { name: 'Admit' }).waitFor();
  await rowOf(fac.page, 'Waiting room', 'Jo').getByRole('button', { name: 'Deny' }).waitFor();
  await fac.page.getByRole('button', { name: 'Admit all' }).waitFor();
  await screenshot(fac, 'admission-waiting-room-facilitator');

  await rowOf(fac.page, 'Waiting room', 'River').getByRole('button', { name: 'Admit' }).click();
  await river.page.locator('#screen-room').waitFor();
  // Admission is announced to the member (the live region clears itself after a few seconds).
  await waitFor(async () => /let in/.test(await river.page.locator('#announcer').textContent()), { interval: 50, what: 'the admission announcement' });
  await rowOf(fac.page, 'Waiting room', 'Jo').getByRole('button', { name: 'Admit' }).click();
  await jo.page.locator('#screen-room').waitFor();

  // Everyone has three tiles.
  for (const p of [fac, river, jo]) {
    await waitFor(async () => (await p.page.locator('.tile').count()) === 3, { what: `three tiles for ${p.name}` });
  }

  // Media: each browser receives video frames and audio packets from both others, and they grow.
  const people = [fac, river, jo];
  for (const p of people) {
    const others = people.filter((o) => o !== p).map((o) => o.claims.sub);
    await waitFor(async () => {
      const s = await inboundStats(p.page);
      return others.every((id) => s[id] && s[id].framesDecoded > 0 && s[id].audioPackets > 0);
    }, { timeout: 45_000, interval: 500, what: `${p.name} to decode video and receive audio from both others` });
  }
  for (const p of people) {
    const others = people.filter((o) => o !== p).map((o) => o.claims.sub);
    const g = await inboundGrowth(p.page, 2000);
    for (const id of others) {
      assert.ok(g[id]?.video > 0, `${p.name}: video frames from ${id} keep being decoded (${JSON.stringify(g)})`);
      assert.ok(g[id]?.audio > 0, `${p.name}: audio packets from ${id} keep arriving (${JSON.stringify(g)})`);
    }
  }
  // Remote video is shown in the tiles.
  await waitFor(() => river.page.evaluate(() => [...document.querySelectorAll('.tile.show-video video')].filter((v) => v.videoWidth > 0).length === 3),
    { timeout: 15_000, what: 'three playing videos on the phone' });

  // Remote audio plays (the join click allowed it): no "Turn on sound" prompt, and every remote
  // audio element is playing.
  for (const p of people) {
    assert.equal(await p.page.getByRole('button', { name: 'Turn on sound' }).count(), 0, `${p.name} sees no sound prompt`);
    await waitFor(() => p.page.evaluate(() => {
      const audios = [...document.querySelectorAll('.tile audio')].filter((a) => a.srcObject);
      return audios.length === 2 && audios.every((a) => !a.paused);
    }), { timeout: 10_000, what: `${p.name}'s two remote audio elements playing` });
  }
  await screenshot(fac, 'admission-room-facilitator-laptop');
  await screenshot(river, 'admission-room-river-phone');
  await screenshot(jo, 'admission-room-jo-laptop');
  for (const p of people) p.checkConsole();
});
