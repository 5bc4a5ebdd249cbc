// The clinic's system mints join links through the admin API; people open them in the browser
// and join the room; the session then shows in the attendance records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startServer, launchBrowser, joinRoom, clickJoin, waitWaiting, rowOf, waitFor, LAPTOP, checkConsole,
} from './helpers.mjs';

async function api(server, key, method, path, body) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function openLink(browser, link, name) {
  const context = await browser.newContext({ viewport: LAPTOP, permissions: ['camera', 'microphone'] });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(m.text()));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(link);
  await page.getByRole('heading', { name: 'Join your group' }).waitFor();
  const token = link.split('#token=')[1];
  return { page, context, consoleLines, name, token, claims: { name } };
}

test('a link minted through the admin API lets a person join in the browser', { timeout: 120_000 }, async (t) => {
  const key = randomBytes(24).toString('hex');
  const server = await startServer(t, { args: ['--api-key', key] });
  const browser = await launchBrowser(t);

  const minted = {};
  for (const [sub, name, role] of [['staff-9', 'Robin', 'facilitator'], ['patient-3', 'Avery', 'member']]) {
    const answer = await api(server, key, 'POST', '/api/v1/rooms/evening-group/tokens', { sub, name, role, ttl_seconds: 900 });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    assert.ok(answer.body.link.startsWith(`${server.url}/#token=`), answer.body.link);
    minted[sub] = answer.body.link;
  }

  const fac = await openLink(browser, minted['staff-9'], 'Robin');
  assert.equal(await fac.page.locator('#prejoin-name').innerText(), 'Robin');
  await joinRoom(fac);
  const member = await openLink(browser, minted['patient-3'], 'Avery');
  await clickJoin(member);
  await waitWaiting(member);
  await rowOf(fac.page, 'Waiting room', 'Avery').getByRole('button', { name: 'Admit' }).click();
  await member.page.locator('#screen-room').waitFor();
  await waitFor(async () => (await member.page.locator('.tile').count()) === 2, { what: 'two tiles' });

  // The API sees the live room, by ids and states only.
  const room = await api(server, key, 'GET', '/api/v1/rooms/evening-group');
  assert.equal(room.status, 200);
  assert.deepEqual(room.body.participants.map((p) => [p.id, p.state]).sort(), [['patient-3', 'present'], ['staff-9', 'present']]);
  assert.ok(!JSON.stringify(room.body).includes('Avery'));

  // The session is in the records, with both people attending.
  const sessions = await api(server, key, 'GET', '/api/v1/sessions?room=evening-group');
  assert.equal(sessions.status, 200);
  const record = sessions.body.sessions[0];
  assert.equal(record.id, room.body.session);
  assert.deepEqual(record.attendance.map((a) => a.participant).sort(), ['patient-3', 'staff-9']);
  for (const person of [fac, member]) checkConsole(person);
});
