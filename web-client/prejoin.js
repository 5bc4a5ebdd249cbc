// The pre-join screen: the person's name, the camera preview and microphone meter, device and
// on/off choices, and Join, which opens the connection (dispatch.js) with those choices.

import { openLocalMedia, listDevices, startLevelMeter } from './media.js';
import { $ } from './view.js';
import { session } from './session.js';
import { show, showMessage, EXPIRED } from './screens.js';
import { act, connect } from './dispatch.js';

const { prefs } = session;

export async function startPrejoin() {
  const { claims } = session;
  act({ kind: 'prejoin-started' }, { quiet: true });
  if (claims.exp && claims.exp * 1000 < Date.now()) {
    showMessage(...EXPIRED);
    return;
  }
  $('prejoin-name').textContent = claims.name ?? '';
  $('prejoin-role').textContent = claims.role === 'facilitator' ? ' (facilitator)' : claims.role === 'observer' ? ' (observer)' : '';
  const observer = claims.role === 'observer';
  $('prejoin-media').hidden = observer;
  $('observer-note').hidden = !observer;
  $('btn-join').disabled = false;
  $('prejoin-status').textContent = '';
  // Start from what the checkboxes say (a Rejoin keeps the person's last choice there).
  prefs.audio = $('prejoin-mic-on').checked;
  prefs.video = $('prejoin-cam-on').checked;
  show('screen-prejoin');
  document.title = 'Circle: join your group';
  if (!observer) session.previewReady = openPreview();
  await session.previewReady;
}

async function openPreview() {
  session.stopMeter();
  for (const t of session.localStream.getTracks()) t.stop();
  const { stream, problem } = await openLocalMedia({ audioDeviceId: prefs.audioDeviceId, videoDeviceId: prefs.videoDeviceId });
  if (session.state.phase !== 'prejoin') {
    // The person joined without waiting for a slow camera; do not start one behind their back.
    stream.getTracks().forEach((t) => t.stop());
    return;
  }
  session.localStream = stream;
  stream.getVideoTracks().forEach((t) => { t.enabled = prefs.video; });
  stream.getAudioTracks().forEach((t) => { t.enabled = prefs.audio; });
  $('preview-video').srcObject = stream;
  const hasVideo = stream.getVideoTracks().length > 0, hasAudio = stream.getAudioTracks().length > 0;
  $('preview-off').hidden = hasVideo && prefs.video;
  $('preview-off').textContent = hasVideo ? 'Camera is off' : 'No camera';
  $('media-problem').hidden = !problem;
  $('media-problem').textContent = problem ? `${problem} You can still join and take part.` : '';
  $('prejoin-cam-on').disabled = !hasVideo;
  $('prejoin-mic-on').disabled = !hasAudio;
  session.stopMeter = startLevelMeter(stream, (level) => {
    const pct = Math.round(level * 100);
    $('mic-meter-fill').style.width = `${pct}%`;
    $('mic-meter').setAttribute('aria-valuenow', String(pct));
  });
  const devices = await listDevices();
  fillSelect($('select-camera'), devices.video, stream.getVideoTracks()[0]);
  fillSelect($('select-mic'), devices.audio, stream.getAudioTracks()[0]);
}

function fillSelect(select, list, track) {
  const current = track?.getSettings?.().deviceId ?? '';
  select.replaceChildren(...list.map((d, i) => {
    const o = document.createElement('option');
    o.value = d.deviceId;
    o.textContent = d.label || `Device ${i + 1}`;
    o.selected = d.deviceId === current;
    return o;
  }));
  select.disabled = list.length === 0;
}

$('select-camera').addEventListener('change', (e) => { prefs.videoDeviceId = e.target.value; session.previewReady = openPreview(); });
$('select-mic').addEventListener('change', (e) => { prefs.audioDeviceId = e.target.value; session.previewReady = openPreview(); });
$('prejoin-cam-on').addEventListener('change', (e) => {
  prefs.video = e.target.checked;
  session.localStream.getVideoTracks().forEach((t) => { t.enabled = prefs.video; });
  $('preview-off').hidden = prefs.video && session.localStream.getVideoTracks().length > 0;
});
$('prejoin-mic-on').addEventListener('change', (e) => {
  prefs.audio = e.target.checked;
  session.localStream.getAudioTracks().forEach((t) => { t.enabled = prefs.audio; });
});

$('btn-join').addEventListener('click', join);

async function join() {
  $('btn-join').disabled = true;
  const observer = session.claims.role === 'observer';
  if (!observer) {
    // A click can come before the browser has opened the camera (or while it asks for
    // permission): wait for it, but not forever.
    $('prejoin-status').textContent = 'Starting your camera and microphone…';
    let timer;
    await Promise.race([session.previewReady, new Promise((r) => { timer = setTimeout(r, 20_000); })]);
    clearTimeout(timer);
  }
  act({ kind: 'join-started' }, { quiet: true });
  $('prejoin-status').textContent = 'Connecting…';
  if (observer) {
    session.localStream = new MediaStream();
  } else {
    if (!session.localStream.getAudioTracks().length) prefs.audio = false;
    if (!session.localStream.getVideoTracks().length) prefs.video = false;
  }
  connect();
}
