// Shared pieces of the browser tests: start `circle`, mint join tokens, drive Chromium.
//
// Every wait here is bounded. Each test starts its own server on 127.0.0.1 port 0 and its own
// browser, and kills both in `t.after`, so tests do not depend on each other.

import { spawn, execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, existsSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');
export const circleBin = process.env.CIRCLE_BIN || join(repoRoot, 'target', 'debug', 'circle');
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
export const screenshotDir = join(here, 'screenshots');

/** The media tests need the server's SFU. CIRCLE_SKIP_MEDIA_TESTS=1 skips them, with a reason
 *  printed by the runner, for a server built without its media plane. */
export function mediaSkipped() {
  return process.env.CIRCLE_SKIP_MEDIA_TESTS ? 'CIRCLE_SKIP_MEDIA_TESTS is set: this server has no media plane' : false;
}

export const LAPTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** Poll `fn` until it returns a truthy value; fail with `what` after `timeout` ms. */
export async function waitFor(fn, { timeout = 15_000, interval = 200, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last value: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait for `promise`, but at most `ms`; the timer never keeps the process alive. */
export function bounded(promise, ms) {
  let timer;
  const limit = new Promise((r) => { timer = setTimeout(r, ms); timer.unref?.(); });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// The server

/**
 * Start `circle serve` on a free loopback port (or a free port of `host`, an address of a test's
 * own network namespace link). Returns {url, port, secret, stop, logs}.
 * Extra CLI arguments (e.g. ['--waiting-room', 'off']) go in `args`.
 */
export async function startServer(t, { args = [], host = '127.0.0.1', secret = randomBytes(24).toString('hex') } = {}) {
  if (!existsSync(circleBin)) {
    throw new Error(`circle binary not found at ${circleBin}: build it with 'cargo build -p circle-server' or set CIRCLE_BIN`);
  }
  // Records on, as a deployment runs, in a file of this test's own.
  // Its own file even when servers share a secret (the nodes of a cluster).
  const database = join(tmpdir(), `circle-browser-${randomBytes(8).toString('hex')}.db`);
  const child = spawn(circleBin, ['serve', '--listen', `${host}:0`, ...args], {
    env: {
      ...process.env,
      CIRCLE_TOKEN_SECRET: secret,
      CIRCLE_DATABASE: `sqlite://${database}`,
      RUST_LOG: process.env.RUST_LOG || 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = [];
  child.stderr.on('data', (d) => { logs.push(d.toString()); if (logs.length > 2000) logs.shift(); });
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });

  let scheme = 'http';
  let out = '';
  const port = await new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`circle did not print 'listening on' within 20 s; stdout: ${out}; stderr: ${logs.join('')}`)), 20_000);
    child.stdout.on('data', (d) => {
      out += d.toString();
      const m = out.match(/listening on (https?):\/\/[0-9.]+:(\d+)/);
      // A self-signed server prints its key's pin right after; tests pin it in Chromium.
      const pinned = !args.includes('--tls-self-signed') || /for pinning\): \S+\n/.test(out);
      if (m && pinned) { clearTimeout(timer); scheme = m[1]; resolvePort(Number(m[2])); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`circle exited with ${code} before listening; stderr: ${logs.join('')}`)); });
  });

  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const done = new Promise((r) => child.once('exit', r));
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await bounded(done, 5000);
    clearTimeout(timer);
    for (const suffix of ['', '-wal', '-shm']) rmSync(database + suffix, { force: true });
  };
  t.after(stop);
  const spki = out.match(/for pinning\): (\S+)/)?.[1];
  const server = { url: `${scheme}://${host}:${port}`, port, secret, stop, logs, child, spki, get exited() { return exited; } };
  // When a test fails, the server's log is the first thing to read.
  t.after(() => { if (process.env.CIRCLE_TEST_LOGS) process.stderr.write(logs.join('')); });
  return server;
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An HS256 join token, as the clinic's system would mint it. */
export function mintToken(secret, { sub, room = 'group-1', role = 'member', name, expIn = 3600, exp } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ sub, room, role, name, iat: now, exp: exp ?? now + expIn }));
  const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

export function joinLink(server, claims) {
  return `${server.url}/#token=${mintToken(server.secret, claims)}`;
}

// ---------------------------------------------------------------------------------------------
// The browser

export const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launch headless Chromium (a fresh temporary profile each time); closed after the test. */
export async function launchBrowser(t, { extraArgs = [], executablePath = chromiumPath } = {}) {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
    timeout: 30_000,
  });
  t.after(async () => { await bounded(browser.close().catch(() => {}), 10_000); });
  return browser;
}

/**
 * One person in their own browser context, on the pre-join screen of their join link.
 * Console output is kept and checked: the client must never log names or tokens.
 */
export async function openPerson(browser, server, claims, { viewport = LAPTOP, reducedMotion = 'no-preference' } = {}) {
  const context = await browser.newContext({ viewport, reducedMotion, permissions: ['camera', 'microphone'] });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const token = mintToken(server.secret, claims);
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(m.text()));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(`${server.url}/#token=${token}`);
  await page.getByRole('heading', { name: 'Join your group' }).waitFor();
  const person = { page, context, claims, token, consoleLines, name: claims.name };
  person.checkConsole = () => checkConsole(person);
  return person;
}

/** The console must not contain the person's name or token, nor uncaught page errors. */
export function checkConsole(person) {
  for (const line of person.consoleLines) {
    if (line.includes(person.token)) throw new Error('the join token appeared in the console');
    if (person.name && line.includes(person.name)) throw new Error(`a display name appeared in the console: ${line}`);
    if (line.startsWith('pageerror:')) throw new Error(`uncaught error in the page: ${line}`);
  }
}

export async function clickJoin(person) {
  await person.page.getByRole('button', { name: 'Join', exact: true }).click();
}

/** Join and wait until in the room (for rooms without a waiting room, or facilitators).
 *  `camera: false` unticks "Join with my camera on" first (less work for a loaded machine). */
export async function joinRoom(person, { camera = true } = {}) {
  if (!camera) await person.page.getByLabel('Join with my camera on').uncheck();
  await clickJoin(person);
  await person.page.locator('#screen-room').waitFor({ state: 'visible' });
}

export async function waitWaiting(person) {
  await person.page.getByRole('heading', { name: 'You\'re in the waiting room' }).waitFor();
}

/** A list row (li) for the person named `name` inside the section labelled `section`. */
export function rowOf(page, section, name) {
  return page.getByRole('region', { name: section }).getByRole('listitem').filter({ hasText: name });
}

export async function screenshot(person, name) {
  mkdirSync(screenshotDir, { recursive: true });
  await person.page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: false });
}

// ---------------------------------------------------------------------------------------------
// Media statistics

/**
 * Per remote participant, their camera's and microphone's inbound statistics on the subscribe
 * connection: {audioPackets, audioLost, framesDecoded, videoBytes, frameHeight}, found through the
 * track → participant map the client keeps (each track's MediaStream id is the publisher's
 * participant id). A shared screen is not counted.
 */
export async function inboundStats(page) {
  return page.evaluate(async () => {
    const media = window.circle.media;
    const pc = media?.subscribe;
    if (!pc) return {};
    const owner = new Map();
    for (const [pid, stream] of media.remote) for (const tr of stream.getTracks()) owner.set(tr.id, pid);
    const out = {};
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const pid = owner.get(s.trackIdentifier);
      if (!pid) return;
      out[pid] ??= { audioPackets: 0, audioLost: 0, framesDecoded: 0, videoBytes: 0, frameHeight: 0 };
      if (s.kind === 'audio') {
        out[pid].audioPackets += s.packetsReceived ?? 0;
        out[pid].audioLost += s.packetsLost ?? 0;
      }
      if (s.kind === 'video') {
        out[pid].framesDecoded += s.framesDecoded ?? 0;
        out[pid].videoBytes += s.bytesReceived ?? 0;
        out[pid].frameHeight = s.frameHeight ?? 0;
      }
    });
    return out;
  });
}

/** How much each remote participant's inbound audio packets and decoded frames grew over `ms`. */
export async function inboundGrowth(page, ms = 2000) {
  const a = await inboundStats(page);
  await sleep(ms);
  const b = await inboundStats(page);
  const out = {};
  for (const pid of Object.keys(b)) {
    out[pid] = {
      audio: b[pid].audioPackets - (a[pid]?.audioPackets ?? 0),
      video: b[pid].framesDecoded - (a[pid]?.framesDecoded ?? 0),
    };
  }
  return out;
}

/** Text content of the page's visible body, for "names nobody" checks. */
export async function visibleText(page, selector) {
  return page.locator(selector).innerText();
}

// ---------------------------------------------------------------------------------------------
// A Redis (Debian's redis-server), for the cluster tests

/** Start redis-server on a free loopback port, keeping nothing on disk; stopped after the test.
 *  Returns {url}. */
export async function startRedis(t) {
  if (!existsSync('/usr/bin/redis-server')) {
    throw new Error('/usr/bin/redis-server is missing: run bash tests/services/setup.sh');
  }
  const port = await freePort();
  const child = spawn('/usr/bin/redis-server', [
    '--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no',
    '--protected-mode', 'yes', '--loglevel', 'warning',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(async () => {
    child.kill('SIGTERM');
    await bounded(new Promise((r) => child.once('exit', r)), 5000);
  });
  const { connect } = await import('node:net');
  await waitFor(() => new Promise((ok) => {
    const socket = connect(port, '127.0.0.1', () => { socket.end(); ok(true); });
    socket.on('error', () => ok(false));
  }), { timeout: 10_000, interval: 50, what: 'redis-server to listen' });
  return { url: `redis://127.0.0.1:${port}/` };
}

// ---------------------------------------------------------------------------------------------
// A TURN server (Debian's coturn), for the relay tests

/** A free TCP port on loopback (the same number is then free for UDP in practice). */
export async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((resolveP, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolveP(port)); });
  });
}

/**
 * Start coturn on loopback with a REST-credential secret (`use-auth-secret`), listening on UDP and
 * TCP on one free port and allowed to relay to loopback peers (it refuses them by default).
 * Returns {port, secret, logs}; stopped after the test.
 */
export async function startTurn(t, { secret = randomBytes(16).toString('hex') } = {}) {
  const port = await freePort();
  const child = spawn('/usr/bin/turnserver', [
    '-n', '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`,
    '--min-port=49152', '--max-port=65535', '--use-auth-secret', `--static-auth-secret=${secret}`,
    '--realm=circle.test', '--allow-loopback-peers', '--no-tls', '--no-dtls', '--no-cli',
    '--fingerprint', '--no-multicast-peers', '--log-file=stdout', '--simple-log', '--verbose',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  child.stdout.on('data', (d) => logs.push(d.toString()));
  child.stderr.on('data', (d) => logs.push(d.toString()));
  t.after(async () => {
    child.kill('SIGTERM');
    await bounded(new Promise((r) => child.once('exit', r)), 3000);
    if (process.env.CIRCLE_TEST_LOGS) process.stderr.write(logs.join(''));
  });
  const { connect } = await import('node:net');
  await waitFor(() => new Promise((ok) => {
    const s = connect(port, '127.0.0.1', () => { s.destroy(); ok(true); });
    s.on('error', () => ok(false));
  }), { timeout: 10_000, interval: 100, what: 'coturn to listen' });
  return { port, secret, logs };
}

/** Make every RTCPeerConnection of the page relay-only, as on a network that blocks UDP to the server. */
export async function forceRelay(context) {
  await context.addInitScript(() => {
    const Original = window.RTCPeerConnection;
    function RelayOnly(config = {}, ...rest) {
      return new Original({ ...config, iceTransportPolicy: 'relay' }, ...rest);
    }
    RelayOnly.prototype = Original.prototype;
    Object.setPrototypeOf(RelayOnly, Original);
    const setConfiguration = Original.prototype.setConfiguration;
    Original.prototype.setConfiguration = function (c) { return setConfiguration.call(this, { ...c, iceTransportPolicy: 'relay' }); };
    window.RTCPeerConnection = RelayOnly;
  });
}

/** The local and remote candidate types and the relay protocol of each connection's selected pair. */
export async function selectedPairs(page) {
  return page.evaluate(async () => {
    const out = {};
    for (const which of ['publish', 'subscribe']) {
      const pc = window.circle.media?.[which];
      if (!pc) continue;
      const stats = await pc.getStats();
      let pair;
      stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
      if (!pair) { out[which] = null; continue; }
      const local = stats.get(pair.localCandidateId);
      const remote = stats.get(pair.remoteCandidateId);
      out[which] = { local: local?.candidateType, relayProtocol: local?.relayProtocol, remote: remote?.candidateType };
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// A slow link: a network namespace of the test's own, joined to this one by a veth pair

/** iproute2's `name` (ip, tc), wherever this Debian keeps it, or null. */
function sbin(name) {
  return ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].map((d) => join(d, name)).find((p) => existsSync(p)) ?? null;
}

/** Why a test that needs a network namespace cannot run here, or false. */
export function namespaceSkipped() {
  if (process.getuid?.() !== 0) return 'network namespaces and tc need root';
  for (const tool of ['ip', 'tc']) if (!sbin(tool)) return `${tool} is missing (iproute2; tests/browser/setup.sh installs it)`;
  return false;
}

/**
 * A network namespace joined to this one by a veth pair, both made for this test and deleted
 * after it: the server listens on `hostIp`, a browser launched with `chromium` runs inside the
 * namespace at `nsIp`, and `limit(rate)` shapes what reaches it (tc's token bucket on the host
 * end, as a slow home line would: what does not fit is queued briefly, then dropped).
 */
export async function slowLink(t) {
  const tag = `${process.pid % 10000}${Math.floor(Math.random() * 90 + 10)}`;
  const ns = `circle-t${tag}`;
  const [hostDev, nsDev] = [`cth${tag}`, `ctn${tag}`];
  // 10.233.a.b/30 from the tag: another test run at the same time gets other addresses.
  const n = Number(tag) % 16000;
  const net = `10.233.${Math.floor(n / 64)}.${(n % 64) * 4}`;
  const [a, b, c] = net.split('.');
  const base = Number(net.split('.')[3]);
  const hostIp = `${a}.${b}.${c}.${base + 1}`;
  const nsIp = `${a}.${b}.${c}.${base + 2}`;
  const ipBin = sbin('ip');
  const tcBin = sbin('tc');
  const ip = (...args) => execFileSync(ipBin, args, { stdio: 'pipe' });
  const cleanup = () => {
    try { ip('link', 'del', hostDev); } catch { /* gone with the namespace */ }
    try { ip('netns', 'del', ns); } catch { /* never made */ }
  };
  t.after(cleanup);
  ip('netns', 'add', ns);
  ip('link', 'add', hostDev, 'type', 'veth', 'peer', 'name', nsDev);
  ip('link', 'set', nsDev, 'netns', ns);
  ip('addr', 'add', `${hostIp}/30`, 'dev', hostDev);
  ip('link', 'set', hostDev, 'up');
  ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${nsIp}/30`, 'dev', nsDev);
  ip('netns', 'exec', ns, 'ip', 'link', 'set', nsDev, 'up');
  ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  // Chromium inside the namespace, through a wrapper playwright can launch.
  const wrapper = join(tmpdir(), `circle-chromium-${ns}.sh`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ${ipBin} netns exec ${ns} ${chromiumPath} "$@"\n`);
  chmodSync(wrapper, 0o755);
  t.after(() => rmSync(wrapper, { force: true }));
  const limit = (rate) => {
    execFileSync(tcBin, ['qdisc', 'replace', 'dev', hostDev, 'root', 'tbf', 'rate', rate, 'burst', '16kb', 'latency', '100ms'], { stdio: 'pipe' });
  };
  return { ns, hostIp, nsIp, chromium: wrapper, limit };
}
