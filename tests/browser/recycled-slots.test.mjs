// People come and go: the facilitator's subscribe connection reuses the slots of those who left
// (RFC 8829 lets a transceiver without a sender take a new track), so it does not grow by two
// sections per visitor, and the newcomer on a reused slot is seen and heard in the right tile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openPerson, joinRoom, waitFor, inboundGrowth, mediaSkipped, screenshot,
} from './helpers.mjs';

const slots = (page) => page.evaluate(() => window.circle.media.subscribe?.getTransceivers().length ?? 0);
const tileVideoWidth = (page, pid) => page.evaluate((id) =>
  document.querySelector(`.tile[data-participant="${id}"] video`)?.videoWidth ?? 0, pid);

test('a newcomer is seen and heard on the slots a leaver freed', { timeout: 150_000, skip: mediaSkipped() }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off'] });
  const browser = await launchBrowser(t);
  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' });
  await joinRoom(fac, { camera: false });

  for (const [sub, name] of [['m-1', 'River'], ['m-2', 'Jo'], ['m-3', 'Ash']]) {
    const member = await openPerson(browser, server, { sub, role: 'member', name });
    await joinRoom(member);
    await waitFor(async () => {
      const g = await inboundGrowth(fac.page, 1000);
      return g[sub]?.video > 0 && g[sub]?.audio > 0;
    }, { timeout: 45_000, interval: 500, what: `${name}'s video and audio at the facilitator` });
    await waitFor(async () => (await tileVideoWidth(fac.page, sub)) > 0, { what: `${name}'s tile to show video` });
    assert.equal(await slots(fac.page), 2, `${name} arrives on the two slots the room has`);
    await screenshot(fac, `recycled-slots-${sub}`);
    await member.page.getByRole('button', { name: 'Leave' }).click();
    await member.page.getByRole('heading', { name: 'You left the session' }).waitFor();
    await member.context.close();
    await waitFor(async () => (await fac.page.locator('.tile').count()) === 1, { what: `${name}'s tile to go` });
  }
  fac.checkConsole();
});
