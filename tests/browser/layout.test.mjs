// The grid fits 16 people on a laptop and on a 390-px phone: every tile lies inside the stage,
// no two overlap, and every name is shown. Fifteen of them are observers (who never publish),
// to keep the machine's load reasonable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, openPerson, joinRoom, screenshot, waitFor, LAPTOP, PHONE } from './helpers.mjs';

async function checkGrid(page, n) {
  const boxes = await page.evaluate(() => {
    const stage = document.querySelector('.stage').getBoundingClientRect();
    const tiles = [...document.querySelectorAll('.tile')].map((t) => {
      const r = t.getBoundingClientRect();
      const name = t.querySelector('.tile-name').getBoundingClientRect();
      return { x: r.x, y: r.y, w: r.width, h: r.height, nameW: name.width, nameInside: name.right <= r.right + 1 };
    });
    return { stage: { x: stage.x, y: stage.y, w: stage.width, h: stage.height }, tiles };
  });
  assert.equal(boxes.tiles.length, n);
  const s = boxes.stage;
  for (const [i, b] of boxes.tiles.entries()) {
    assert.ok(b.w >= 60 && b.h >= 34, `tile ${i} is big enough (${b.w}x${b.h})`);
    assert.ok(b.x >= s.x - 1 && b.y >= s.y - 1 && b.x + b.w <= s.x + s.w + 1 && b.y + b.h <= s.y + s.h + 1, `tile ${i} lies inside the stage`);
    assert.ok(b.nameW > 0 && b.nameInside, `tile ${i} shows its name`);
    for (const c of boxes.tiles.slice(i + 1)) {
      const apart = b.x + b.w <= c.x + 1 || c.x + c.w <= b.x + 1 || b.y + b.h <= c.y + 1 || c.y + c.h <= b.y + 1;
      assert.ok(apart, 'tiles do not overlap');
    }
  }
}

test('sixteen people fit on a laptop and on a phone', { timeout: 180_000 }, async (t) => {
  // Sixteen browsers on one address: lift the per-address connection cap, as behind a proxy
  // (each page also holds keep-alive connections from loading the app).
  const server = await startServer(t, { args: ['--waiting-room', 'off', '--max-connections-per-ip', '0'] });
  const browser = await launchBrowser(t);

  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  // Camera off: fifteen browsers decoding a video stream would swamp a two-core machine.
  await joinRoom(fac, { camera: false });
  const names = ['Alex', 'Blair', 'Casey', 'Dana', 'Eli', 'Frankie', 'Gray', 'Harper', 'Indi', 'Jules', 'Kai', 'Lane', 'Morgan', 'Noor', 'Oakley'];
  const observers = [];
  // Join a few at a time: each is a browser context of its own.
  for (let i = 0; i < names.length; i += 5) {
    const batch = await Promise.all(names.slice(i, i + 5).map((name, j) =>
      openPerson(browser, server, { sub: `o-${i + j}`, role: 'observer', name }, { viewport: i + j === 0 ? PHONE : { width: 800, height: 600 } })));
    await Promise.all(batch.map((o) => joinRoom(o)));
    observers.push(...batch);
  }
  const phone = observers[0];
  for (const p of [fac, phone]) {
    await waitFor(async () => (await p.page.locator('.tile').count()) === 16, { timeout: 20_000, what: `16 tiles for ${p.name}` });
    await p.page.waitForTimeout(300); // let the grid settle after the last join
    await checkGrid(p.page, 16);
  }
  await screenshot(fac, 'layout-16-laptop');
  await screenshot(phone, 'layout-16-phone');

  // A small group of 2 on the phone looks right too.
  for (const o of observers.slice(1)) {
    await o.page.getByRole('button', { name: 'Leave' }).click();
    await o.page.getByRole('heading', { name: 'You left the session' }).waitFor();
  }
  await waitFor(async () => {
    return (await phone.page.locator('.tile').count()) === 2;
  }, { timeout: 30_000, what: '2 tiles left' }).catch(async (e) => {
    throw new Error(`${e.message}; still shown: ${(await phone.page.locator('.tile .tile-name').allInnerTexts()).join(', ')}`);
  });
  await phone.page.waitForTimeout(300);
  await checkGrid(phone.page, 2);
  await screenshot(phone, 'layout-2-phone');

  for (const p of [fac, ...observers]) p.checkConsole();
});
