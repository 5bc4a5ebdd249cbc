// The client's media module (web-client/media.js) on its own, against a stand-in for the SFU
// written in the page with the browser's own RTCPeerConnections. This is a test double, not the
// server: it checks the client's half of the media contract (publish offer and answer, trickled
// candidates both ways, answering subscribe offers and re-offers one at a time, placing each track
// by its stream id = the publisher's id, dropping the tracks of someone who left), independently of
// the server's SFU, which admission-media and stick-audio test end to end.
//
// The stand-in: per client, one connection that answers the client's publish offer, and one that
// offers every other client's received tracks, with each track's msid stream id rewritten to its
// publisher's id (as the SFU does). Received audio is played silently in the page because Chrome
// only pulls remote audio that something consumes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser } from './helpers.mjs';

test('the media module publishes, answers subscribe offers and places tracks by publisher', { timeout: 60_000 }, async (t) => {
  const server = await startServer(t, { args: ['--waiting-room', 'off'] });
  const browser = await launchBrowser(t);
  const ctx = await browser.newContext({ permissions: ['camera', 'microphone'] });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Any page of the server will do: the module is loaded on its own below.
  await page.goto(`${server.url}/`);
  const result = await page.evaluate(async () => {
    const { Media, openLocalMedia } = await import('/media.js');
    const statuses = [];
    const clients = {};
    const srv = {}; // per client: {pub, sub}
    const tracksOf = {}; // publisher id -> [track]
    function mkServer(id) {
      const pub = new RTCPeerConnection();
      const sub = new RTCPeerConnection();
      pub.onicecandidate = (e) => clients[id].handleIce({ pc: 'publish', candidate: e.candidate ? e.candidate.toJSON() : null });
      sub.onicecandidate = (e) => clients[id].handleIce({ pc: 'subscribe', candidate: e.candidate ? e.candidate.toJSON() : null });
      pub.ontrack = (e) => {
        if (e.track.kind === 'audio') {
          const a = new Audio();
          a.srcObject = new MediaStream([e.track]);
          a.volume = 0.01;
          a.play().catch(() => {});
          (window.__sinks ??= []).push(a);
        }
        (tracksOf[id] ??= []).push(e.track);
        setTimeout(reoffer, 200);
      };
      srv[id] = { pub, sub, sent: new Set() };
    }
    let busy = Promise.resolve();
    function reoffer() {
      busy = busy.then(async () => {
        for (const id of Object.keys(clients)) {
          const s = srv[id];
          let changed = false;
          for (const [pid, tracks] of Object.entries(tracksOf)) {
            if (pid === id) continue;
            for (const tr of tracks) if (!s.sent.has(tr)) { s.sub.addTrack(tr, new MediaStream([tr])); s.sent.add(tr); changed = true; }
          }
          if (!changed) continue;
          const offer = await s.sub.createOffer();
          await s.sub.setLocalDescription(offer);
          // msid: the publisher's id. Map each m-section's stream id to the owner.
          let sdp = offer.sdp;
          for (const tr of s.sent) {
            const owner = Object.entries(tracksOf).find(([, ts]) => ts.includes(tr))[0];
            sdp = sdp.replace(new RegExp(`a=msid:(\\S+) ${tr.id}`, 'g'), `a=msid:${owner} ${tr.id}`);
          }
          await clients[id].handleSdp({ pc: 'subscribe', sdp_type: 'offer', sdp });
        }
      });
    }
    for (const id of ['A', 'B', 'C']) {
      mkServer(id);
      const m = new Media({
        request: async (type, f) => {
          if (type === 'sdp' && f.pc === 'publish') {
            await srv[id].pub.setRemoteDescription({ type: 'offer', sdp: f.sdp });
            const ans = await srv[id].pub.createAnswer();
            await srv[id].pub.setLocalDescription(ans);
            setTimeout(() => m.handleSdp({ pc: 'publish', sdp_type: 'answer', sdp: ans.sdp }), 10);
            return { type: 'ok' };
          }
          throw Object.assign(new Error('x'), { code: 'bad_request' });
        },
        send: (type, f) => {
          if (type === 'ice') { const pc = f.pc === 'publish' ? srv[id].pub : srv[id].sub; pc.addIceCandidate(f.candidate ?? null).catch(() => {}); }
          if (type === 'sdp' && f.pc === 'subscribe') srv[id].sub.setRemoteDescription({ type: 'answer', sdp: f.sdp });
          return true;
        },
        onRemoteStream: () => {},
        onStatus: (s, d) => statuses.push(`${id}:${s}${d ? ' ' + d : ''}`),
      });
      clients[id] = m;
      const { stream } = await openLocalMedia({});
      m.setLocalStream(stream);
      await m.startPublishing();
    }
    await new Promise((r) => setTimeout(r, 6000));
    const out = {};
    for (const id of Object.keys(clients)) {
      const m = clients[id];
      const owner = new Map();
      for (const [pid, st] of m.remote) for (const tr of st.getTracks()) owner.set(tr.id, pid);
      const per = {};
      (await m.subscribe.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        const pid = owner.get(s.trackIdentifier) ?? '?';
        per[pid] ??= {};
        per[pid][s.kind] = s.kind === 'audio' ? s.packetsReceived : s.framesDecoded;
      });
      out[id] = { remote: [...m.remote.keys()].sort(), per };
    }
    // B leaves: the relay removes B's tracks from A's and C's subscribe connections and re-offers.
    const bTracks = tracksOf.B; delete tracksOf.B;
    for (const id of ['A', 'C']) {
      const sv = srv[id];
      for (const sender of sv.sub.getSenders()) if (bTracks.includes(sender.track)) sv.sub.removeTrack(sender);
      const offer = await sv.sub.createOffer();
      await sv.sub.setLocalDescription(offer);
      let sdp = offer.sdp;
      for (const tr of sv.sent) {
        const owner = Object.entries(tracksOf).find(([, ts]) => ts.includes(tr))?.[0];
        if (owner) sdp = sdp.replace(new RegExp(`a=msid:(\\S+) ${tr.id}`, 'g'), `a=msid:${owner} ${tr.id}`);
      }
      await clients[id].handleSdp({ pc: 'subscribe', sdp_type: 'offer', sdp });
    }
    await new Promise((r) => setTimeout(r, 1500));
    const after = { A: [...clients.A.remote.keys()].sort(), C: [...clients.C.remote.keys()].sort() };
    return { out, statuses, after };
  });
  assert.deepEqual(errors, []);
  // Every client connected both of its connections.
  for (const id of ['A', 'B', 'C']) assert.ok(result.statuses.includes(`${id}:connected`), JSON.stringify(result.statuses));
  assert.deepEqual(result.after, { A: ['C'], C: ['A'] });
  for (const id of ['A', 'B', 'C']) {
    const others = ['A', 'B', 'C'].filter((x) => x !== id);
    assert.deepEqual(result.out[id].remote, others);
    for (const o of others) {
      assert.ok(result.out[id].per[o]?.video > 0, `${id} decodes ${o}'s video: ${JSON.stringify(result.out[id])}`);
      assert.ok(result.out[id].per[o]?.audio > 0, `${id} receives ${o}'s audio: ${JSON.stringify(result.out[id])}`);
    }
  }
});
