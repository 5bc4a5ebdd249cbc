// Screen share and the spotlight in Chromium (protocol.md, "Screen share"): Chromium's fake
// screen capture (its fake media UI picks a source without a prompt) shared from the "Share
// screen" button, frames decoded by the others on the screen track, the stick deciding which
// member may share, and the stick holder in the spotlight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openPerson, joinRoom, rowOf, screenshot, waitFor, mediaSkipped,
  LAPTOP, PHONE, sleep,
} from './helpers.mjs';

/** Frames decoded so far on the screen `sharerId` shares, as `page` receives it. */
async function screenFrames(page, sharerId) {
  return page.evaluate(async (sharer) => {
    const media = window.circle.media;
    const stream = media?.screens.get(sharer);
    if (!media?.subscribe || !stream) return 0;
    const ids = new Set(stream.getTracks().map((t) => t.id));
    let frames = 0;
    (await media.subscribe.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && ids.has(s.trackIdentifier)) frames += s.framesDecoded ?? 0;
    });
    return frames;
  }, sharerId);
}

/** Wait until `viewer` decodes `sharer`'s screen: frames arriving and the large tile naming them. */
async function seesScreen(viewer, sharerId, sharerName) {
  const tile = viewer.page.locator('#focus .screen-tile');
  await tile.getByText(`${sharerName} is sharing their screen`).waitFor({ timeout: 30_000 });
  const first = await waitFor(() => screenFrames(viewer.page, sharerId), { timeout: 30_000, what: `${sharerName}'s screen at ${viewer.name}` });
  await waitFor(async () => (await screenFrames(viewer.page, sharerId)) > first + 5,
    { timeout: 20_000, what: `more frames of ${sharerName}'s screen at ${viewer.name}` });
}

/** Wait until `viewer` no longer receives `sharer`'s screen: no track, no large tile. */
async function screenGone(viewer, sharerId) {
  await waitFor(() => viewer.page.evaluate((id) => !window.circle.media.screens.has(id), sharerId),
    { timeout: 20_000, what: `the screen track gone at ${viewer.name}` });
  await viewer.page.locator('#focus .screen-tile').waitFor({ state: 'detached', timeout: 10_000 });
}

test('a facilitator shares a screen that the others see decoded, and the browser\'s own stop ends it', { timeout: 180_000, skip: mediaSkipped() }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off'] });
  const browser = await launchBrowser(t);
  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac);
  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: PHONE });
  await joinRoom(river, { camera: false });
  const jo = await openPerson(browser, server, { sub: 'm-2', role: 'member', name: 'Jo' }, { viewport: LAPTOP });
  await joinRoom(jo, { camera: false });

  // Members without the stick have no button; the facilitator has.
  assert.equal(await river.page.getByRole('button', { name: 'Share screen' }).count(), 0);
  await fac.page.getByRole('button', { name: 'Share screen' }).click();
  await fac.page.getByRole('button', { name: 'Stop sharing' }).waitFor();
  await fac.page.locator('#focus .screen-tile').getByText('You are sharing your screen').waitFor();
  for (const viewer of [river, jo]) await seesScreen(viewer, 'f-1', 'Sam');
  // The camera tiles stay beside it.
  assert.equal(await jo.page.locator('#grid .tile').count(), 3);
  await screenshot(jo, 'screen-share-facilitator-laptop');
  await screenshot(river, 'screen-share-facilitator-phone');

  // The browser's "Stop sharing" bar ends the capture, which the page sees as the track ending.
  await fac.page.evaluate(() => window.circle.media.screenTrack.dispatchEvent(new Event('ended')));
  await fac.page.getByRole('button', { name: 'Share screen' }).waitFor();
  for (const viewer of [river, jo]) await screenGone(viewer, 'f-1');
  await waitFor(() => jo.page.evaluate(() => window.circle.state.participants.get('f-1')?.screen === false),
    { what: 'Sam shown as no longer sharing' });

  for (const p of [fac, river, jo]) p.checkConsole();
});

test('a member shares while holding the stick, and the share stops when the stick moves on', { timeout: 180_000, skip: mediaSkipped() }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off'] });
  const browser = await launchBrowser(t);
  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac, { camera: false });
  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: LAPTOP });
  await joinRoom(river, { camera: false });
  const jo = await openPerson(browser, server, { sub: 'm-2', role: 'member', name: 'Jo' }, { viewport: LAPTOP });
  await joinRoom(jo, { camera: false });

  // A member without the stick: no button, and a modified client asking anyway is refused.
  const refusal = await river.page.evaluate(() => window.circle.conn
    .request('set_media', { audio: true, video: false, screen: 'made-up-track' })
    .then(() => 'ok', (e) => e.code));
  assert.equal(refusal, 'forbidden');
  assert.equal(await river.page.getByRole('button', { name: 'Share screen' }).count(), 0);

  await fac.page.getByRole('switch', { name: 'Talking stick mode' }).check();
  await rowOf(fac.page, 'People', 'River').getByRole('button', { name: 'Give the stick' }).click();
  await river.page.getByText('You have the talking stick', { exact: true }).waitFor();
  await river.page.getByRole('button', { name: 'Share screen' }).click();
  await river.page.getByRole('button', { name: 'Stop sharing' }).waitFor();
  for (const viewer of [fac, jo]) await seesScreen(viewer, 'm-1', 'River');

  // The stick moves on to Jo: River's share ends everywhere, River's capture included.
  await rowOf(fac.page, 'People', 'Jo').getByRole('button', { name: 'Give the stick' }).click();
  await jo.page.getByText('You have the talking stick', { exact: true }).waitFor();
  for (const viewer of [fac, jo]) await screenGone(viewer, 'm-1');
  await waitFor(() => river.page.evaluate(() => window.circle.media.screenTrack === null),
    { what: 'River\'s capture stopped' });
  await river.page.getByRole('button', { name: 'Share screen' }).waitFor({ state: 'detached' }).catch(() => {});
  assert.equal(await river.page.getByRole('button', { name: 'Share screen' }).isVisible(), false);
  // Jo, holding the stick now, may share.
  await jo.page.getByRole('button', { name: 'Share screen' }).waitFor();

  for (const p of [fac, river, jo]) p.checkConsole();
});

test('in stick mode the holder is in the spotlight, which follows the stick and a switch to the grid is remembered', { timeout: 150_000 }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off'] });
  const browser = await launchBrowser(t);
  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac, { camera: false });
  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: LAPTOP });
  await joinRoom(river, { camera: false });
  const jo = await openPerson(browser, server, { sub: 'm-2', role: 'member', name: 'Jo' }, { viewport: PHONE });
  await joinRoom(jo, { camera: false });

  await fac.page.getByRole('switch', { name: 'Talking stick mode' }).check();
  const stage = jo.page.locator('#stage');
  await rowOf(fac.page, 'People', 'River').getByRole('button', { name: 'Give the stick' }).click();
  await waitFor(async () => await stage.getAttribute('data-layout') === 'spotlight', { what: 'the spotlight at Jo' });
  await jo.page.locator('#focus .tile[data-participant="m-1"]').waitFor();
  await jo.page.locator('#focus').getByText('Has the talking stick').waitFor();
  await waitFor(async () => /Spotlight on River, who has the talking stick/.test(await jo.page.locator('#announcer').textContent()),
    { interval: 50, what: 'the spotlight announced for River' });
  await screenshot(jo, 'spotlight-phone');

  // The spotlight follows the stick, and says so.
  await rowOf(fac.page, 'People', 'Jo').getByRole('button', { name: 'Give the stick' }).click();
  await waitFor(async () => /Spotlight on Jo/.test(await fac.page.locator('#announcer').textContent()),
    { interval: 50, what: 'the spotlight announced for Jo at Sam' });
  await fac.page.locator('#focus .tile[data-participant="m-2"]').waitFor();
  assert.equal(await fac.page.locator('#grid .tile[data-participant="m-2"]').count(), 0);

  // One click back to the grid, remembered after a reload.
  await fac.page.getByRole('button', { name: 'Show everyone' }).click();
  await waitFor(async () => await fac.page.locator('#stage').getAttribute('data-layout') === 'grid', { what: 'the grid at Sam' });
  assert.equal(await fac.page.locator('#grid .tile').count(), 3);
  assert.equal(await fac.page.evaluate(() => localStorage.getItem('circle.layout')), 'grid');
  await fac.page.reload();
  await fac.page.getByRole('heading', { name: 'Join your group' }).waitFor();
  await fac.page.getByRole('button', { name: 'Join', exact: true }).click();
  await fac.page.locator('#screen-room').waitFor({ state: 'visible' });
  await sleep(500);
  assert.equal(await fac.page.locator('#stage').getAttribute('data-layout'), 'grid');
  await fac.page.getByRole('button', { name: 'Spotlight the speaker' }).click();
  await fac.page.locator('#focus .tile[data-participant="m-2"]').waitFor();

  for (const p of [fac, river, jo]) p.checkConsole();
});
