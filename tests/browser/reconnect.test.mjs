// A member whose network drops is shown reconnecting, resumes by themselves, and comes back
// holding what they held: the stick for one, a place in line for the other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openPerson, joinRoom, screenshot, waitFor, inboundGrowth, mediaSkipped, LAPTOP, PHONE,
} from './helpers.mjs';

/**
 * Drop the page's socket as a failing network would, and keep it down for `downMs`: while down,
 * reconnect attempts fail their handshake (they go to a path of the same server that is not a
 * WebSocket, so the page's Content-Security-Policy allows them). Then the client's own backoff
 * brings it back.
 */
async function dropNetwork(person, downMs) {
  await person.page.evaluate((downMs) => {
    const conn = window.circle.conn;
    const realUrl = conn.url;
    conn.url = realUrl.replace(/\/ws$/, '/no-such-socket');
    conn.ws.close(4000, 'test: network drop');
    window.__restoreNetwork = () => { conn.url = realUrl; };
    setTimeout(window.__restoreNetwork, downMs);
  }, downMs);
}

test('a member whose socket drops resumes and keeps the stick and the place in line', { timeout: 150_000 }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off', '--resume-grace', '20s'] });
  const browser = await launchBrowser(t);

  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac);
  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: PHONE });
  await joinRoom(river);
  const jo = await openPerson(browser, server, { sub: 'm-2', role: 'member', name: 'Jo' }, { viewport: LAPTOP });
  await joinRoom(jo);

  // River holds the stick; Jo is 1st in line.
  await fac.page.getByRole('switch', { name: 'Talking stick mode' }).check();
  await river.page.getByRole('button', { name: 'Raise hand' }).click();
  await river.page.getByText('You are 1st in line').waitFor();
  await fac.page.getByRole('button', { name: 'Give the stick to the next' }).click();
  await river.page.getByText('You have the talking stick', { exact: true }).waitFor();
  await jo.page.getByRole('button', { name: 'Raise hand' }).click();
  await jo.page.getByText('You are 1st in line').waitFor();

  // River's network drops for 4 s.
  const seqBefore = await river.page.evaluate(() => window.circle.conn.lastSeq);
  await dropNetwork(river, 4000);
  await river.page.getByText('Reconnecting…', { exact: true }).first().waitFor();
  // The others see River reconnecting on River's tile.
  await fac.page.locator('.tile', { hasText: 'River' }).getByText('Reconnecting…').waitFor();
  await screenshot(river, 'reconnect-river-reconnecting-phone');
  await screenshot(fac, 'reconnect-facilitator-sees-reconnecting');

  // Something happens while River is away: Jo lowers and raises the hand again (still 1st).
  await jo.page.getByRole('button', { name: 'Lower hand' }).click();
  await jo.page.getByRole('button', { name: 'Raise hand' }).click();
  await jo.page.getByText('You are 1st in line').waitFor();

  // River comes back by themselves, still holding the stick.
  await river.page.locator('#reconnecting-banner').waitFor({ state: 'hidden', timeout: 20_000 });
  await river.page.getByText('You have the talking stick', { exact: true }).waitFor();
  await fac.page.locator('.tile.holder', { hasText: 'River' }).waitFor();
  await waitFor(async () => (await fac.page.locator('.tile', { hasText: 'River' }).getByText('Reconnecting…').count()) === 0,
    { timeout: 10_000, what: 'the facilitator to see River connected again' });
  // It was a resume (sequence numbers carried on), not a new session.
  const seqAfter = await river.page.evaluate(() => window.circle.conn.lastSeq);
  assert.ok(seqAfter > seqBefore, `seq continued across the resume (${seqBefore} -> ${seqAfter})`);
  if (!mediaSkipped()) {
    // Media does not ride on the socket: the room still hears River, who holds the stick.
    await waitFor(async () => ((await inboundGrowth(fac.page, 1500))['m-1']?.audio ?? 0) > 20,
      { timeout: 20_000, what: 'River to be heard after the resume' });
  }
  await screenshot(river, 'reconnect-river-back-phone');

  // Each resume token works once: River's network drops again, and the client resumes with the
  // token the server handed it in `resumed` (the first one would be refused).
  const firstToken = await river.page.evaluate(() => window.circle.state.resumeToken);
  await dropNetwork(river, 2000);
  await river.page.locator('#reconnecting-banner').waitFor({ state: 'visible' });
  await river.page.locator('#reconnecting-banner').waitFor({ state: 'hidden', timeout: 20_000 });
  await river.page.getByText('You have the talking stick', { exact: true }).waitFor();
  const secondToken = await river.page.evaluate(() => window.circle.state.resumeToken);
  assert.notEqual(secondToken, firstToken, 'the server handed a new resume token');
  const seqAgain = await river.page.evaluate(() => window.circle.conn.lastSeq);
  assert.ok(seqAgain > seqAfter, `seq continued across the second resume (${seqAfter} -> ${seqAgain})`);

  // Now Jo's network drops; Jo comes back still 1st in line.
  await dropNetwork(jo, 3000);
  await jo.page.locator('#reconnecting-banner').waitFor({ state: 'visible' });
  await jo.page.locator('#reconnecting-banner').waitFor({ state: 'hidden', timeout: 20_000 });
  await jo.page.getByText('You are 1st in line').waitFor();
  const queue = fac.page.getByRole('list', { name: 'Queue' });
  assert.match(await queue.innerText(), /Jo/);

  // And the floor still works after the resume: River passes the stick on by being done.
  await river.page.getByRole('button', { name: 'Done speaking' }).click();
  await fac.page.getByRole('button', { name: 'Give the stick to the next' }).click();
  await jo.page.getByText('You have the talking stick', { exact: true }).waitFor();

  // Jo reloads the page by mistake: the link is no longer in the address bar, but the tab
  // remembers it; joining again brings Jo back still holding the stick.
  await jo.page.reload();
  await jo.page.getByRole('heading', { name: 'Join your group' }).waitFor();
  assert.equal(await jo.page.locator('#prejoin-name').innerText(), 'Jo');
  await jo.page.getByRole('button', { name: 'Join', exact: true }).click();
  await jo.page.getByText('You have the talking stick', { exact: true }).waitFor();
  await fac.page.locator('.tile.holder', { hasText: 'Jo' }).waitFor();

  for (const p of [fac, river, jo]) p.checkConsole();
});

test('a member away longer than the grace period is told so and can rejoin', { timeout: 90_000 }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off', '--resume-grace', '2s'] });
  const browser = await launchBrowser(t);
  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac);
  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: PHONE });
  await joinRoom(river);

  // Down for 6 s: longer than the 2 s grace, so the server lets River's place go.
  await dropNetwork(river, 6000);
  await river.page.locator('#reconnecting-banner').waitFor({ state: 'visible' });
  await fac.page.locator('.tile', { hasText: 'River' }).waitFor({ state: 'detached', timeout: 15_000 });
  await river.page.getByRole('heading', { name: 'You were away too long' }).waitFor({ timeout: 30_000 });
  await screenshot(river, 'reconnect-away-too-long-phone');

  // Rejoin with the same link (still valid): back through the pre-join screen into the room.
  await river.page.getByRole('button', { name: 'Rejoin' }).click();
  await river.page.getByRole('heading', { name: 'Join your group' }).waitFor();
  await river.page.getByRole('button', { name: 'Join', exact: true }).click();
  await river.page.locator('#screen-room').waitFor();
  await fac.page.locator('.tile', { hasText: 'River' }).waitFor();
  river.checkConsole();
  fac.checkConsole();
});

test('leaving while reconnecting still tells the room at once', { timeout: 60_000 }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off', '--resume-grace', '60s'] });
  const browser = await launchBrowser(t);
  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac, { camera: false });
  const river = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River' }, { viewport: PHONE });
  await joinRoom(river, { camera: false });

  // The network is down long enough for the client to back off between attempts; it comes
  // back while the client is still waiting to retry, and River presses Leave then.
  await dropNetwork(river, 60_000);
  await fac.page.locator('.tile', { hasText: 'River' }).getByText('Reconnecting…').waitFor();
  await river.page.waitForTimeout(4000);
  await river.page.evaluate(() => window.__restoreNetwork());
  await river.page.getByRole('button', { name: 'Leave' }).click();
  await river.page.getByRole('heading', { name: 'You left the session' }).waitFor();
  // Well within the 60 s grace: River's tile goes because River said goodbye, not by timeout.
  await fac.page.locator('.tile', { hasText: 'River' }).waitFor({ state: 'detached', timeout: 15_000 });
  river.checkConsole();
  fac.checkConsole();
});
