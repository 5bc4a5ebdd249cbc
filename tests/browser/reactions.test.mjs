// Reactions appear as counts on every screen and name nobody.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, openPerson, joinRoom, screenshot, waitFor, LAPTOP, PHONE } from './helpers.mjs';

/** Record every `reactions` message the page receives (tapping the app's message handler). */
async function recordReactions(person) {
  await person.page.evaluate(() => {
    window.__reactions = [];
    const conn = window.circle.conn;
    const orig = conn.onMessage;
    conn.onMessage = (m) => { if (m.type === 'reactions') window.__reactions.push(m); orig(m); };
  });
}

const totals = (msgs) => {
  const sum = {};
  for (const m of msgs) for (const [k, n] of Object.entries(m.counts)) sum[k] = (sum[k] ?? 0) + n;
  return sum;
};

test('reactions float as counts on every screen and name nobody', { timeout: 120_000 }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off', '--reaction-window', '2s'] });
  const browser = await launchBrowser(t);

  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac);
  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: PHONE });
  await joinRoom(river);
  const jo = await openPerson(browser, server, { sub: 'm-2', role: 'member', name: 'Jo' }, { viewport: LAPTOP, reducedMotion: 'reduce' });
  await joinRoom(jo);
  const people = [fac, river, jo];
  for (const p of people) await recordReactions(p);

  // River sends two hearts, Jo one heart and one applause.
  await river.page.getByRole('button', { name: 'Heart' }).click();
  await river.page.getByRole('button', { name: 'Heart' }).click();
  await jo.page.getByRole('button', { name: 'Heart' }).click();
  await jo.page.getByRole('button', { name: 'Applause' }).click();

  // Every screen shows the counts (the window may split them; the totals must match).
  for (const p of people) {
    await waitFor(async () => {
      const sum = totals(await p.page.evaluate(() => window.__reactions));
      return sum.heart === 3 && sum.applause === 1 && Object.keys(sum).length === 2;
    }, { timeout: 15_000, what: `3 hearts and 1 applause at ${p.name}` });
  }
  for (const p of people) {
    const summary = p.page.getByRole('region', { name: 'Reactions' });
    await waitFor(async () => /Heart \d/.test(await summary.innerText()), { what: `a heart count on ${p.name}'s screen` });
    const text = await summary.innerText();
    for (const other of people) assert.ok(!text.includes(other.name), `the reaction summary names nobody (${text})`);
    // Nothing in the floating bubbles names anyone either.
    const floating = await p.page.locator('#reactions-float').innerText();
    for (const other of people) assert.ok(!floating.includes(other.name), `the floating reactions name nobody (${floating})`);
  }
  await screenshot(fac, 'reactions-facilitator-laptop');
  await screenshot(river, 'reactions-river-phone');
  await screenshot(jo, 'reactions-jo-reduced-motion');

  // And on the wire: only counts, no sender.
  for (const p of people) {
    for (const m of await p.page.evaluate(() => window.__reactions)) {
      assert.equal(typeof m.counts, 'object');
      const raw = JSON.stringify(m);
      for (const other of people) {
        assert.ok(!raw.includes(other.claims.sub) && !raw.includes(other.name), `a reactions message names nobody: ${raw}`);
      }
    }
  }
  for (const p of people) p.checkConsole();
});
