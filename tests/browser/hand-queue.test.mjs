// Raise hand: two members see their own place in line; the facilitator sees both, in order, with
// notes; "Give the stick to the next" moves the line on; the holder passes the stick to the next;
// the facilitator lowers a hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, openPerson, joinRoom, screenshot, waitFor, LAPTOP, PHONE } from './helpers.mjs';

test('raise hand shows each member their place and the facilitator the ordered queue', { timeout: 120_000 }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off'] });
  const browser = await launchBrowser(t);

  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac);
  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: PHONE });
  await joinRoom(river);
  const jo = await openPerson(browser, server, { sub: 'm-2', role: 'member', name: 'Jo' }, { viewport: LAPTOP });
  await joinRoom(jo);

  // Talking stick mode.
  await fac.page.getByRole('switch', { name: 'Talking stick mode' }).check();
  await river.page.getByText('Talking stick mode. Nobody has the stick.').waitFor();

  // River raises a hand with a note, then Jo without.
  await river.page.getByLabel('Note for the facilitator (optional)').fill('about my week');
  await river.page.getByRole('button', { name: 'Raise hand' }).click();
  await river.page.getByText('You are 1st in line').waitFor();
  await jo.page.getByRole('button', { name: 'Raise hand' }).click();
  await jo.page.getByText('You are 2nd in line').waitFor();
  // River is still first, and can lower the hand from here.
  await river.page.getByRole('button', { name: 'Lower hand' }).waitFor();
  assert.match(await river.page.locator('#hand-position').innerText(), /1st in line/);

  // The facilitator sees both, in order, with River's note, each with their own controls.
  const queue = fac.page.getByRole('list', { name: 'Queue' });
  await waitFor(async () => (await queue.getByRole('listitem').count()) === 2, { what: 'two people in the queue' });
  const rows = await queue.getByRole('listitem').allInnerTexts();
  assert.match(rows[0], /River/);
  assert.match(rows[0], /about my week/);
  assert.match(rows[1], /Jo/);
  await queue.getByRole('listitem').filter({ hasText: 'River' }).getByRole('button', { name: 'Give the stick' }).waitFor();
  await queue.getByRole('listitem').filter({ hasText: 'Jo' }).getByRole('button', { name: 'Lower hand' }).waitFor();

  await screenshot(fac, 'hand-queue-facilitator-laptop');
  await screenshot(river, 'hand-queue-river-phone');
  await screenshot(jo, 'hand-queue-jo-laptop');

  // Give the stick to the next: River holds it, Jo moves up to 1st.
  await fac.page.getByRole('button', { name: 'Give the stick to the next' }).click();
  await river.page.getByText('You have the talking stick', { exact: true }).waitFor();
  await river.page.getByRole('button', { name: 'Done speaking' }).waitFor();
  await jo.page.getByText('You are 1st in line').waitFor();
  await waitFor(async () => (await queue.getByRole('listitem').count()) === 1, { what: 'one person left in the queue' });
  // Everyone sees who holds the stick on their tile.
  await jo.page.locator('.tile.holder', { hasText: 'River' }).waitFor();
  await screenshot(river, 'hand-queue-river-holds-stick-phone');

  // River passes the stick straight to Jo, from Jo's row in River's list of who is waiting.
  await river.page.getByRole('listitem').filter({ hasText: 'Jo' }).getByRole('button', { name: 'Pass the stick' }).click();
  await jo.page.getByText('You have the talking stick', { exact: true }).waitFor();
  await river.page.getByRole('button', { name: 'Raise hand' }).waitFor();
  await fac.page.locator('.tile.holder', { hasText: 'Jo' }).waitFor();

  // River raises a hand again; the facilitator lowers it from River's row.
  await river.page.getByRole('button', { name: 'Raise hand' }).click();
  await river.page.getByText('You are 1st in line').waitFor();
  await queue.getByRole('listitem').filter({ hasText: 'River' }).getByRole('button', { name: 'Lower hand' }).click();
  await river.page.getByRole('button', { name: 'Raise hand' }).waitFor();
  await waitFor(async () => (await queue.getByRole('listitem').count()) === 0, { what: 'an empty queue' });

  for (const p of [fac, river, jo]) p.checkConsole();
});
