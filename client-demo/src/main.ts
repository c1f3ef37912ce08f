import type { RosterEntry } from '../../mcu/src/signaling/protocol.ts';
import { Call, type CallState } from './call.ts';
import { createSyntheticMedia, type SyntheticMedia } from './media/synthetic-media.ts';
import { MediaProbe } from './stats/media-probe.ts';

/** What tests and curious people can reach from the console. */
export interface DemoHandle {
  client: Call | null;
  probe: MediaProbe | null;
  /** Every state the call went through, with performance.now() timestamps. */
  states: Array<{ state: CallState; at: number }>;
  events: Array<{ event: string; at: number; detail?: unknown }>;
  join(room: string, name: string): Promise<void>;
}

declare global {
  interface Window {
    mcuDemo: DemoHandle;
  }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const params = new URLSearchParams(window.location.search);

const STATE_TEXT: Record<CallState, string> = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  joining: 'Joining…',
  negotiating: 'Starting media…',
  'in-call': 'In call',
  reconnecting: 'Server failover: reconnecting…',
  'restarting-media': 'Server failover: restoring media…',
  left: 'Left the call',
  failed: 'Call failed',
};

const demo: DemoHandle = { client: null, probe: null, states: [], events: [], join };
window.mcuDemo = demo;

let media: SyntheticMedia | MediaStream | null = null;

async function localMedia(name: string): Promise<MediaStream> {
  const tone = params.get('tone');
  const tile = params.get('tile');
  if (tone !== null || tile !== null) {
    const synthetic = createSyntheticMedia({ toneHz: Number(tone ?? 440), tileColor: tile ?? '#1a73e8', label: name });
    media = synthetic;
    return synthetic.stream;
  }
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  media = stream;
  return stream;
}

function setIndicator(state: CallState): void {
  const el = $('connection');
  el.dataset.state = state;
  $('connection-text').textContent = STATE_TEXT[state];
}

function renderRoster(entries: RosterEntry[], self: string | null): void {
  const list = $('roster');
  list.replaceChildren(
    ...entries.map((p) => {
      const li = document.createElement('li');
      li.dataset.participant = p.id;
      if (!p.connected) li.classList.add('away');
      const name = document.createElement('span');
      name.textContent = p.name + (p.id === self ? ' (you)' : '') + (p.connected ? '' : ' (reconnecting)');
      const flags = document.createElement('span');
      flags.className = 'flags';
      flags.textContent = [p.audioMuted ? 'mic off' : '', p.videoMuted ? 'video off' : ''].filter(Boolean).join(' · ');
      li.append(name, flags);
      return li;
    }),
  );
}

async function join(room: string, name: string): Promise<void> {
  const error = $('join-error');
  error.hidden = true;
  const stream = await localMedia(name);
  const preview = $<HTMLVideoElement>('preview');
  preview.srcObject = new MediaStream(stream.getVideoTracks());
  const mix = $<HTMLVideoElement>('mix');
  const probe = new MediaProbe(mix);
  const silence = params.get('spareSilenceMs');
  const client = new Call({ room, name, localStream: stream, ...(silence ? { spareSwitch: { silenceMs: Number(silence) } } : {}) });
  demo.client = client;
  demo.probe = probe;
  const log = (event: string, detail?: unknown): void => void demo.events.push({ event, at: performance.now(), detail });
  client.on('state', (state) => {
    demo.states.push({ state, at: performance.now() });
    setIndicator(state);
  });
  client.on('roster', (update) => {
    renderRoster(update.participants, client.participantId);
    // Every participant of the room has a tile in the grid, in roster order.
    probe.setTileCount(update.participants.length);
  });
  client.on('remote-stream', (remote) => {
    // The same stream again (its tracks swapped for a spare path's): keep the element playing.
    if (mix.srcObject !== remote) {
      mix.srcObject = remote;
      void mix.play().catch(() => undefined);
    }
    probe.watch(client.pc, remote);
    log('remote-stream');
  });
  client.on('signaling-error', (err) => log('signaling-error', err));
  client.on('reconnected', (info) => {
    log('reconnected', info);
    showNote(`Server failover: signaling was back after ${Math.round(info.outageMs)} ms.`);
  });
  client.on('media-restarted', (info) => {
    log('media-restarted', info);
    // Measured by the page itself: the longest gaps around the failover.
    setTimeout(() => {
      const gaps = probe.gaps();
      showNote(`Server failover handled: audio gap ${Math.round(gaps.longestAudioGapMs)} ms, video gap ${Math.round(gaps.longestVideoGapMs)} ms.`);
    }, 1500);
  });
  client.on('spare-state', (info) => log('spare-state', info));
  // The warm spare's audio plays from the moment it connects (silent until a failover).
  const spareOut = new Audio();
  client.on('spare-audio', (track) => {
    spareOut.srcObject = track ? new MediaStream([track]) : null;
    if (track) void spareOut.play().catch(() => undefined);
    probe.watchSpare(track ? client.sparePeerConnection : null, track);
  });
  client.on('spare-alarm', (info) => log('spare-alarm', info));
  client.on('spare-switched', (info) => {
    log('spare-switched', info);
    setTimeout(() => {
      const gaps = probe.gaps();
      showNote(`Server failover handled on the spare path: audio gap ${Math.round(gaps.longestAudioGapMs)} ms, video gap ${Math.round(gaps.longestVideoGapMs)} ms.`);
    }, 1500);
  });
  try {
    const reply = await client.join();
    $('room-name').textContent = reply.room;
    $('join-form').hidden = true;
    $('call').hidden = false;
    history.replaceState(null, '', `/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}${window.location.search.includes('tone=') ? `&tone=${params.get('tone')}` : ''}${params.get('tile') ? `&tile=${encodeURIComponent(params.get('tile')!)}` : ''}`);
  } catch (err) {
    error.textContent = `Could not join: ${(err as Error).message}`;
    error.hidden = false;
    client.close();
    stopMedia();
    throw err;
  }
}

function showNote(text: string): void {
  const note = $('failover-note');
  note.textContent = text;
  note.hidden = false;
}

function stopMedia(): void {
  if (media instanceof MediaStream) for (const t of media.getTracks()) t.stop();
  else media?.stop();
  media = null;
}

function toggle(button: HTMLButtonElement, kind: 'audio' | 'video', on: string, off: string): void {
  button.addEventListener('click', () => {
    const muted = button.getAttribute('aria-pressed') !== 'true';
    button.setAttribute('aria-pressed', String(muted));
    button.textContent = muted ? off : on;
    void demo.client?.setMuted(kind, muted).catch((err: unknown) => console.error(err));
  });
}

$('room').setAttribute('value', params.get('room') ?? '');
$('name').setAttribute('value', params.get('name') ?? '');
$<HTMLFormElement>('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const room = $<HTMLInputElement>('room').value.trim();
  const name = $<HTMLInputElement>('name').value.trim();
  void join(room, name).catch((err: unknown) => console.error(err));
});
toggle($('mute-audio'), 'audio', 'Mute microphone', 'Unmute microphone');
toggle($('mute-video'), 'video', 'Stop video', 'Start video');
$('leave').addEventListener('click', () => {
  void demo.client?.leave().finally(() => {
    stopMedia();
    demo.probe?.close();
    $('call').hidden = true;
    $('join-form').hidden = false;
  });
});
$('copy-link').addEventListener('click', () => {
  const url = `${window.location.origin}/?room=${encodeURIComponent($('room-name').textContent ?? '')}&autojoin=1`;
  void navigator.clipboard?.writeText(url).catch(() => undefined);
  window.prompt('Share this link to invite someone:', url);
});
window.addEventListener('pagehide', () => demo.client?.close());

if (params.get('autojoin') === '1' && params.get('room') && params.get('name')) {
  void join(params.get('room')!, params.get('name')!).catch((err: unknown) => console.error(err));
}
