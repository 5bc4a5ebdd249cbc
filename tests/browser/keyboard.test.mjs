// Keyboard only: a member joins, raises a hand and reacts without a mouse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, openPerson, joinRoom, waitWaiting, rowOf, screenshot, waitFor, LAPTOP, PHONE } from './helpers.mjs';

/** The accessible-ish name of the focused element (aria-label, else its label or text). */
const focusedName = (page) => page.evaluate(() => {
  const e = document.activeElement;
  if (!e || e === document.body) return '';
  if (e.getAttribute('aria-label')) return e.getAttribute('aria-label');
  if (e.labels?.length) return e.labels[0].innerText.trim();
  const copy = e.cloneNode(true);
  copy.querySelectorAll('[aria-hidden="true"]').forEach((h) => h.remove());
  return (copy.textContent || e.value || '').replace(/\s+/g, ' ').trim();
});

/** Press Tab (at most `max` times) until the focused control's name is `name`. */
async function tabTo(page, name, max = 60) {
  const seen = [];
  for (let i = 0; i < max; i++) {
    const n = await focusedName(page);
    if (n === name) return;
    seen.push(n);
    await page.keyboard.press('Tab');
  }
  throw new Error(`could not reach "${name}" with Tab; focus went through: ${JSON.stringify(seen)}`);
}

test('keyboard only: join, raise a hand, react', { timeout: 120_000 }, async (t) => {
  const server = await startServer(t);
  const browser = await launchBrowser(t);

  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac);
  await fac.page.getByRole('switch', { name: 'Talking stick mode' }).check();
  await fac.page.evaluate(() => {
    window.__reactions = [];
    const conn = window.circle.conn;
    const orig = conn.onMessage;
    conn.onMessage = (m) => { if (m.type === 'reactions') window.__reactions.push(m); orig(m); };
  });

  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: PHONE });
  const page = river.page;

  // Join with Tab and Enter.
  await tabTo(page, 'Join');
  await screenshot(river, 'keyboard-join-focused-phone');
  await page.keyboard.press('Enter');
  await waitWaiting(river);
  await rowOf(fac.page, 'Waiting room', 'River').getByRole('button', { name: 'Admit' }).click();
  await page.locator('#screen-room').waitFor();

  // Raise a hand with Tab and Enter.
  await tabTo(page, 'Raise hand');
  await page.keyboard.press('Enter');
  await page.getByText('You are 1st in line').waitFor();
  await fac.page.getByRole('list', { name: 'Queue' }).getByRole('listitem').filter({ hasText: 'River' }).waitFor();
  // Focus moved to the control that now makes sense: Lower hand.
  assert.equal(await focusedName(page), 'Lower hand');

  // React with Tab and Space. With only two people here a reaction would name its sender, so
  // the server refuses it and the member is told why.
  await tabTo(page, 'Heart');
  await page.keyboard.press('Space');
  await page.getByText('Reactions are sent once at least three people are here').first().waitFor();
  const cofac = await openPerson(browser, server, { sub: 'f-2', role: 'facilitator', name: 'Kim' }, { viewport: LAPTOP });
  await joinRoom(cofac);
  await page.locator('.tile', { hasText: 'Kim' }).first().waitFor();
  await tabTo(page, 'Heart');
  await page.keyboard.press('Space');
  await waitFor(async () => (await fac.page.evaluate(() => window.__reactions)).some((m) => m.counts.heart >= 1),
    { timeout: 10_000, what: 'the facilitator to receive the heart' });
  await page.getByRole('region', { name: 'Reactions' }).getByText(/Heart 1/).waitFor();

  // Every focusable control seen on the way has a visible focus indicator and a name.
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, select, textarea')]
    .filter((e) => e.offsetParent !== null)
    .filter((e) => !(e.getAttribute('aria-label') || e.labels?.[0]?.innerText.trim() || e.innerText.trim()))
    .map((e) => e.outerHTML.slice(0, 80)));
  assert.deepEqual(unnamed, [], 'every visible control has a name');

  await screenshot(river, 'keyboard-room-phone');
  river.checkConsole();
  fac.checkConsole();
});
