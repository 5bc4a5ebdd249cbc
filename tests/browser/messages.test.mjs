// The clear messages a person gets when they cannot be in the room: an expired link, being denied,
// a locked room, being removed, the session ending. Signalling only: no media needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openPerson, joinRoom, clickJoin, waitWaiting, rowOf, screenshot, joinLink,
  LAPTOP, PHONE,
} from './helpers.mjs';

test('expired link, denied, locked room, removed and session ended each say so plainly', { timeout: 150_000 }, async (t) => {
  const server = await startServer(t);
  const browser = await launchBrowser(t);

  // An expired link never reaches the room.
  const ctx = await browser.newContext({ viewport: PHONE });
  const page = await ctx.newPage();
  await page.goto(joinLink(server, { sub: 'm-9', role: 'member', name: 'Old', exp: Math.floor(Date.now() / 1000) - 60 }));
  await page.getByRole('heading', { name: 'This link has expired' }).waitFor();
  await screenshot({ page }, 'messages-expired-phone');
  // A page opened without a link explains what to do.
  await page.goto(`${server.url}/`);
  await page.reload();
  await page.getByRole('heading', { name: 'Please use your join link' }).waitFor();

  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac);

  // Denied from the waiting room.
  const ash = await openPerson(browser, server, { sub: 'm-3', role: 'member', name: 'Ash' }, { viewport: PHONE });
  await clickJoin(ash);
  await waitWaiting(ash);
  await rowOf(fac.page, 'Waiting room', 'Ash').getByRole('button', { name: 'Deny' }).click();
  await ash.page.getByRole('heading', { name: 'You could not be let in this time' }).waitFor();
  await screenshot(ash, 'messages-denied-phone');

  // An admitted member and an observer; then the room is locked and a newcomer is refused.
  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: PHONE });
  await clickJoin(river);
  await waitWaiting(river);
  const obs = await openPerson(browser, server, { sub: 'o-1', role: 'observer', name: 'Quinn' }, { viewport: LAPTOP });
  await obs.page.getByText('You join as an observer').waitFor();
  await clickJoin(obs);
  await waitWaiting(obs);
  await fac.page.getByRole('button', { name: 'Admit all' }).click();
  await river.page.locator('#screen-room').waitFor();
  await obs.page.locator('#screen-room').waitFor();
  // The observer is shown as an observer to everyone, and has no microphone or hand controls.
  await river.page.locator('.tile', { hasText: 'Quinn' }).getByText('Observer').waitFor();
  assert.equal(await obs.page.getByRole('button', { name: 'Raise hand' }).isVisible(), false);
  assert.equal(await obs.page.getByRole('button', { name: 'Heart' }).isVisible(), true);

  await fac.page.getByRole('button', { name: 'Lock room' }).click();
  await fac.page.locator('#btn-lock[aria-pressed="true"]').waitFor();
  const late = await openPerson(browser, server, { sub: 'm-4', role: 'member', name: 'Lee' }, { viewport: PHONE });
  await clickJoin(late);
  await late.page.getByRole('heading', { name: 'The room is locked' }).waitFor();
  await screenshot(late, 'messages-locked-phone');

  // Mute from River's row: River sees it, and Unmute takes its place.
  await rowOf(fac.page, 'People', 'River').getByRole('button', { name: 'Mute' }).click();
  await river.page.getByText('A facilitator has muted your microphone for now.').waitFor();
  await river.page.locator('.tile', { hasText: 'River' }).getByText('Muted by facilitator').waitFor();
  await rowOf(fac.page, 'People', 'River').getByRole('button', { name: 'Unmute' }).click();
  await river.page.locator('.tile', { hasText: 'River' }).getByText('Muted by facilitator').waitFor({ state: 'detached' });

  // Private help: only the facilitator hears of it.
  await river.page.getByRole('button', { name: 'I need the facilitator' }).click();
  await fac.page.getByText('River asked for the facilitator').waitFor();
  assert.equal(await obs.page.getByText('asked for the facilitator').count(), 0);
  await screenshot(fac, 'messages-help-facilitator');

  // Removed.
  await rowOf(fac.page, 'People', 'Quinn').getByRole('button', { name: 'Remove' }).click();
  await obs.page.getByRole('heading', { name: 'You were removed from this session' }).waitFor();
  await river.page.locator('.tile', { hasText: 'Quinn' }).waitFor({ state: 'detached' });
  // Opening the link again does not bring them back, and says why.
  const again = await openPerson(browser, server, { sub: 'o-1', role: 'observer', name: 'Quinn' }, { viewport: LAPTOP });
  await clickJoin(again);
  await again.page.getByRole('heading', { name: 'You cannot rejoin this session' }).waitFor();

  // The session ends for everyone.
  await fac.page.getByRole('button', { name: 'End session' }).click();
  await river.page.getByRole('heading', { name: 'The session has ended' }).waitFor();
  await fac.page.getByRole('heading', { name: 'The session has ended' }).waitFor();
  await screenshot(river, 'messages-ended-phone');

  for (const p of [fac, ash, river, obs, late, again]) p.checkConsole();
});
