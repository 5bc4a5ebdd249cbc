// Reach through a network that blocks UDP to the server: browsers that may only use a relay
// (iceTransportPolicy "relay") still see and hear each other through Debian's coturn, with the
// short-lived credentials the server hands out, over TURN/UDP and over TURN/TCP. With credentials
// the relay refuses, there is no media and the member is told so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, startTurn, forceRelay, selectedPairs, launchBrowser, mintToken, joinRoom,
  waitFor, inboundStats, inboundGrowth, mediaSkipped, LAPTOP,
} from './helpers.mjs';

async function openRelayOnly(browser, server, claims) {
  const context = await browser.newContext({ viewport: LAPTOP, permissions: ['camera', 'microphone'] });
  context.setDefaultTimeout(15_000);
  await forceRelay(context);
  const page = await context.newPage();
  await page.goto(`${server.url}/#token=${mintToken(server.secret, { room: 'relay', ...claims })}`);
  await page.getByRole('heading', { name: 'Join your group' }).waitFor();
  return { page, context, claims, name: claims.name };
}

for (const transport of ['udp', 'tcp']) {
  test(`relay-only browsers exchange audio and video through coturn over TURN/${transport.toUpperCase()}`, { timeout: 120_000, skip: mediaSkipped() }, async (t) => {
    const turn = await startTurn(t);
    const server = await startServer(t, {
      args: ['--waiting-room', 'off', '--turn-url', `turn:127.0.0.1:${turn.port}?transport=${transport}`, '--turn-secret', turn.secret],
    });
    const browser = await launchBrowser(t);
    const fac = await openRelayOnly(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' });
    await joinRoom(fac);
    const member = await openRelayOnly(browser, server, { sub: 'm-1', role: 'member', name: 'River' });
    await joinRoom(member);
    for (const [p, other] of [[fac, 'm-1'], [member, 'f-1']]) {
      await waitFor(async () => {
        const s = await inboundStats(p.page);
        return s[other]?.framesDecoded > 0 && s[other]?.audioPackets > 0;
      }, { timeout: 45_000, interval: 500, what: `${p.name} to decode video and receive audio through the relay` });
      const g = await inboundGrowth(p.page, 1500);
      assert.ok(g[other]?.video > 0 && g[other]?.audio > 0, `${p.name}: media keeps flowing (${JSON.stringify(g)})`);
      const pairs = await selectedPairs(p.page);
      for (const which of ['publish', 'subscribe']) {
        assert.equal(pairs[which]?.local, 'relay', `${p.name} ${which}: ${JSON.stringify(pairs)}`);
        assert.equal(pairs[which]?.relayProtocol, transport, `${p.name} ${which}: ${JSON.stringify(pairs)}`);
      }
    }
    assert.ok(turn.logs.join('').includes('ALLOCATE'), 'coturn saw no allocation');

    // The member's socket drops and resumes: the connections take the fresh credentials that
    // came with `resumed`, and media still flows through the relay.
    const username = () => member.page.evaluate(() => window.circle.media.publish.getConfiguration().iceServers[0]?.username);
    const before = await username();
    assert.match(before ?? '', /^\d+:[0-9a-f]{16}$/);
    await member.page.evaluate(() => {
      const conn = window.circle.conn;
      const realUrl = conn.url;
      conn.url = realUrl.replace(/\/ws$/, '/no-such-socket');
      conn.ws.close(4000, 'test: network drop');
      setTimeout(() => { conn.url = realUrl; }, 1500);
    });
    await waitFor(async () => (await username()) !== before, { timeout: 30_000, what: 'fresh TURN credentials after the resume' });
    await waitFor(async () => (await inboundGrowth(member.page, 1000))['f-1']?.audio > 0,
      { timeout: 30_000, what: 'media through the relay after the resume' });
  });
}

test('with credentials the relay refuses, there is no media and the member is told', { timeout: 90_000, skip: mediaSkipped() }, async (t) => {
  const turn = await startTurn(t);
  const server = await startServer(t, {
    args: ['--waiting-room', 'off', '--turn-url', `turn:127.0.0.1:${turn.port}?transport=udp`, '--turn-secret', 'not-the-relays-secret'],
  });
  const browser = await launchBrowser(t);
  const fac = await openRelayOnly(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' });
  await joinRoom(fac);
  const member = await openRelayOnly(browser, server, { sub: 'm-1', role: 'member', name: 'River' });
  await joinRoom(member);
  await waitFor(async () => /relay/i.test(await member.page.locator('#media-status').textContent()),
    { timeout: 45_000, interval: 500, what: 'a message about the relay' });
  const s = await inboundStats(member.page);
  assert.ok(!(s['f-1']?.framesDecoded > 0), `no media without the relay: ${JSON.stringify(s)}`);
});

// Expired credentials: the relay's own secret, but a lifetime of one second. An observer sends
// nothing, so its first connection (the one bringing the facilitator's media) is built only
// once the facilitator publishes, by which time its credentials have expired.
test('with credentials that have expired, there is no media and the member is told', { timeout: 90_000, skip: mediaSkipped() }, async (t) => {
  const turn = await startTurn(t);
  const server = await startServer(t, {
    args: ['--waiting-room', 'off', '--turn-url', `turn:127.0.0.1:${turn.port}?transport=udp`, '--turn-secret', turn.secret, '--turn-ttl', '1s'],
  });
  const browser = await launchBrowser(t);
  const observer = await openRelayOnly(browser, server, { sub: 'o-1', role: 'observer', name: 'Pat' });
  await joinRoom(observer);
  const expires = await observer.page.evaluate(() => window.circle.state.iceServers?.find((s) => s.username)?.username);
  assert.match(expires ?? '', /^\d+:[0-9a-f]{16}$/, 'the observer was handed REST credentials');
  await new Promise((r) => setTimeout(r, 2500));
  const fac = await openRelayOnly(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' });
  await joinRoom(fac);
  await waitFor(async () => /relay/i.test(await observer.page.locator('#media-status').textContent()),
    { timeout: 45_000, interval: 500, what: 'a message about the relay' });
  const s = await inboundStats(observer.page);
  assert.ok(!(s['f-1']?.framesDecoded > 0), `no media with expired credentials: ${JSON.stringify(s)}`);
});
