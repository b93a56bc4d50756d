// Listening in on a room from the page (and talking into it), through the room's streams:
// `POST …/listen` makes a listen-in and answers with a one-time socket path; the page opens a
// WebSocket there and gets the `l16` protocol at 16 kHz (a JSON text frame, then binary frames
// of 20 ms of little-endian 16-bit PCM), which it plays with Web Audio. Talking sends the
// microphone back the same way, 20 ms at a time. Loaded before app.js, which owns the buttons.
'use strict';

const LISTEN_RATE = 16000;
// Audio scheduled ahead of the clock: enough to ride out a late frame, little enough to talk.
const LISTEN_AHEAD = 0.12;

const listening = {
  socket: null,
  context: null,
  next: 0, // when the next frame plays, on the context's clock
  peak: -Infinity, // loudest frame since the level was last shown (dBFS)
  levelTimer: null,
  mic: null, // {stream, source, node}
  room: null,
  talk: false,
  onChange: () => {},
};

// dBFS of 16-bit samples (their RMS).
function levelOf(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  const rms = Math.sqrt(sum / Math.max(1, samples.length)) / 32768;
  return rms > 0 ? 20 * Math.log10(rms) : -Infinity;
}

function playFrame(bytes) {
  const ctx = listening.context;
  const samples = new Int16Array(bytes, 0, bytes.byteLength >> 1);
  const level = levelOf(samples);
  if (level > listening.peak) listening.peak = level;
  if (!ctx) return;
  const buffer = ctx.createBuffer(1, samples.length, LISTEN_RATE);
  const out = buffer.getChannelData(0);
  for (let i = 0; i < samples.length; i++) out[i] = samples[i] / 32768;
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  // Late (a gap, or the first frame): start again a little ahead; early: right after the last.
  if (listening.next < ctx.currentTime) listening.next = ctx.currentTime + LISTEN_AHEAD;
  source.start(listening.next);
  listening.next += buffer.duration;
}

// The microphone, 20 ms frames of L16 at 16 kHz to the socket.
async function startMic(socket) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
  const ctx = listening.context;
  const source = ctx.createMediaStreamSource(stream);
  // The context runs at 16 kHz: what it hands over is at the stream's rate already.
  const node = ctx.createScriptProcessor(1024, 1, 1);
  let pending = new Int16Array(0);
  const frame = LISTEN_RATE / 50;
  node.onaudioprocess = (ev) => {
    const input = ev.inputBuffer.getChannelData(0);
    const joined = new Int16Array(pending.length + input.length);
    joined.set(pending);
    for (let i = 0; i < input.length; i++) {
      joined[pending.length + i] = Math.max(-32768, Math.min(32767, Math.round(input[i] * 32767)));
    }
    let at = 0;
    for (; at + frame <= joined.length; at += frame) {
      if (socket.readyState === WebSocket.OPEN) socket.send(joined.slice(at, at + frame).buffer);
    }
    pending = joined.slice(at);
  };
  source.connect(node);
  // A script processor runs only while connected to an output; it writes nothing to it.
  node.connect(ctx.destination);
  listening.mic = { stream, source, node };
}

function stopMic() {
  const mic = listening.mic;
  if (!mic) return;
  mic.node.disconnect();
  mic.source.disconnect();
  for (const t of mic.stream.getTracks()) t.stop();
  listening.mic = null;
}

// Ends the listen-in (the socket's close ends its stream).
function stopListening(why) {
  const socket = listening.socket;
  listening.socket = null;
  stopMic();
  clearInterval(listening.levelTimer);
  listening.levelTimer = null;
  if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
  if (listening.context) listening.context.close();
  listening.context = null;
  listening.room = null;
  listening.talk = false;
  listening.onChange({ on: false, why: why || '' });
}

// Listens in on the room (as `as`, the app the page acts for), talking into it too if `talk`.
// `post` is the page's API call; `onChange` is told {on, talk, level, why} as it goes.
async function startListening(room, talk, post, onChange) {
  stopListening();
  listening.onChange = onChange;
  listening.room = room;
  listening.talk = talk;
  // Made in the click that asked for it: a browser lets only a gesture start audio.
  listening.context = new AudioContext({ sampleRate: LISTEN_RATE });
  listening.next = 0;
  listening.peak = -Infinity;
  const made = await post('/api/v1/conferences/' + encodeURIComponent(room) + '/listen', { talk });
  if (listening.room !== room) return;
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const socket = new WebSocket(scheme + location.host + made.socket_path);
  socket.binaryType = 'arraybuffer';
  listening.socket = socket;
  socket.onmessage = (ev) => {
    if (typeof ev.data !== 'string') playFrame(ev.data);
  };
  socket.onclose = (ev) => {
    if (listening.socket !== socket) return;
    stopListening(ev.code === 1000 ? 'ended' : 'lost');
  };
  socket.onopen = async () => {
    if (listening.socket !== socket) return;
    onChange({ on: true, talk, level: null });
    if (talk) {
      try {
        await startMic(socket);
      } catch (e) {
        onChange({ on: true, talk: false, level: null, why: 'no microphone: ' + e.message });
      }
    }
  };
  // The level heard, five times a second (silence shows as such).
  listening.levelTimer = setInterval(() => {
    const peak = listening.peak;
    listening.peak = -Infinity;
    if (listening.socket === socket && socket.readyState === WebSocket.OPEN) {
      onChange({ on: true, talk: Boolean(listening.mic), level: peak });
    }
  }, 200);
}
