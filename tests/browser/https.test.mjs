// HTTPS and WSS on the main port: a server with a self-signed certificate, which Chromium trusts
// only because the test pins that certificate's public key (not a blanket switch), serves the
// page, the WebSocket and media; a facilitator and a member see and hear each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openPerson, joinRoom, waitFor, inboundStats, mediaSkipped,
} from './helpers.mjs';

test('over HTTPS with a pinned self-signed certificate, people join and exchange media', { timeout: 120_000, skip: mediaSkipped() }, async (t) => {
  const server = await startServer(t, { args: ['--tls-self-signed', '--waiting-room', 'off'] });
  assert.ok(server.url.startsWith('https://'), server.url);
  assert.ok(server.spki, 'the server printed no key pin');
  const browser = await launchBrowser(t, { extraArgs: [`--ignore-certificate-errors-spki-list=${server.spki}`] });
  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam', room: 'secure' });
  assert.equal(await fac.page.evaluate(() => [location.protocol, window.isSecureContext]).then(JSON.stringify), '["https:",true]');
  await joinRoom(fac);
  const member = await openPerson(browser, server, { sub: 'm-1', role: 'member', name: 'River', room: 'secure' });
  await joinRoom(member);
  assert.ok((await member.page.evaluate(() => window.circle.conn.url)).startsWith('wss://'));
  for (const [p, other] of [[fac, 'm-1'], [member, 'f-1']]) {
    await waitFor(async () => {
      const s = await inboundStats(p.page);
      return s[other]?.framesDecoded > 0 && s[other]?.audioPackets > 0;
    }, { timeout: 45_000, interval: 500, what: `${p.name} to receive media over the secure page` });
  }
  for (const p of [fac, member]) p.checkConsole();
});

test('a browser that does not trust the certificate gets no page', { timeout: 60_000 }, async (t) => {
  const server = await startServer(t, { args: ['--tls-self-signed'] });
  const browser = await launchBrowser(t);
  const page = await (await browser.newContext()).newPage();
  await assert.rejects(page.goto(server.url), /ERR_CERT/);
});
