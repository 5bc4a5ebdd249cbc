// The facilitator's other tools: an anonymous check-in and its result, an invitation to speak
// (passed, then accepted) answered privately, and a turn limit with its countdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, openPerson, joinRoom, rowOf, screenshot, waitFor, LAPTOP, PHONE } from './helpers.mjs';

test('check-in, invitation to speak and turn limit', { timeout: 150_000 }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off'] });
  const browser = await launchBrowser(t);

  const fac = await openPerson(browser, server, { sub: 'f-1', role: 'facilitator', name: 'Sam' }, { viewport: LAPTOP });
  await joinRoom(fac);
  const members = [];
  for (const [sub, name, viewport] of [['m-1', 'River', PHONE], ['m-2', 'Jo', LAPTOP], ['m-3', 'Ash', PHONE]]) {
    const m = await openPerson(browser, server, { sub, role: 'member', name }, { viewport });
    await joinRoom(m, { camera: false });
    members.push(m);
  }
  const [river, jo, ash] = members;
  // Joining with the camera off shows as such to the others.
  await fac.page.locator('.tile', { hasText: 'River' }).getByText('Camera off').waitFor();

  // Check-in: three anonymous answers, then the result on every screen. Three answers are shown
  // only when they differ: with two alike, the third person would learn both others' answers.
  await fac.page.getByLabel('Question').fill('How are you arriving today?');
  await fac.page.getByLabel('Options, one per line (2 to 10)').fill('Calm\nTense\nTired');
  await fac.page.getByRole('button', { name: 'Start check-in' }).click();
  const choices = { River: 'Calm', Jo: 'Tense', Ash: 'Tired' };
  for (const m of members) {
    await m.page.getByRole('group', { name: 'How are you arriving today?' }).waitFor();
    await m.page.getByLabel(choices[m.name], { exact: true }).check();
    await m.page.getByRole('button', { name: 'Send answer' }).click();
    await m.page.getByText('Your answer was sent anonymously.').waitFor();
  }
  await screenshot(river, 'checkin-open-phone');
  await fac.page.getByRole('button', { name: 'Close check-in' }).click();
  for (const p of [fac, ...members]) {
    const result = p.page.getByRole('region', { name: 'Check-in result' });
    await result.getByText('Calm: 1').waitFor();
    await result.getByText('Tense: 1').waitFor();
    await result.getByText('Tired: 1').waitFor();
    const text = await result.innerText();
    for (const m of members) assert.ok(!text.includes(m.name), 'the result names nobody');
  }
  await screenshot(fac, 'checkin-result-facilitator');

  // Invitation: Jo passes, River accepts; the facilitator hears each answer privately.
  await fac.page.getByRole('switch', { name: 'Talking stick mode' }).check();
  await rowOf(fac.page, 'People', 'Jo').getByRole('button', { name: 'Invite to speak' }).click();
  await jo.page.getByText('The facilitator invites you to speak.').waitFor();
  await screenshot(jo, 'invite-jo-laptop');
  await jo.page.getByRole('button', { name: 'Pass', exact: true }).click();
  await fac.page.getByText('Jo passed on your invitation to speak.').waitFor();
  assert.equal(await river.page.getByText('passed on your invitation').count(), 0, 'members never see invitation answers');

  // A turn limit of 20 s: River accepts an invitation and sees the countdown.
  await fac.page.getByLabel('Turn limit (seconds, empty for none)').fill('20');
  await fac.page.getByRole('button', { name: 'Set turn limit' }).click();
  await rowOf(fac.page, 'People', 'River').getByRole('button', { name: 'Invite to speak' }).click();
  await river.page.getByRole('button', { name: 'Accept' }).click();
  await river.page.getByText('You have the talking stick', { exact: true }).waitFor();
  await fac.page.getByText('River accepted your invitation to speak.').waitFor();
  await waitFor(async () => /0:(1\d|20) left in your turn/.test(await river.page.locator('#stick-countdown').innerText()),
    { what: 'a countdown under 20 s' });
  await screenshot(river, 'turn-limit-countdown-phone');
  // The facilitator takes the stick back.
  await fac.page.getByRole('button', { name: 'Take the stick back' }).click();
  await river.page.getByRole('button', { name: 'Raise hand' }).waitFor();
  assert.equal(await ash.page.locator('.tile.holder').count(), 0);

  for (const p of [fac, ...members]) p.checkConsole();
});
