/**
 * Load generator of the mixing benchmark: synthetic peers in their own process, so their CPU
 * (VP8/Opus coding, the JS that draws tiles and reads frames) is measured apart from the MCU's.
 * Driven by one JSON command per line on stdin, answers with one JSON line per command on stdout.
 * It ends, closing every peer, on {"cmd":"close"} or as soon as stdin closes: it never outlives
 * the benchmark that started it.
 *
 *   {"id":1,"cmd":"join","url":"http://127.0.0.1:3000","room":"bench","peers":[{"name":"p1","toneHz":300,"colour":[200,40,40]}]}
 *   {"id":2,"cmd":"reset"}                       start a measurement window
 *   {"id":3,"cmd":"report","freqs":[300,550]}    counters since the reset, tone levels of freqs
 *   {"cmd":"close"}
 */
import { createInterface } from 'node:readline';
import { SyntheticPeer, type Rgb, type SyntheticPeerRtpStats, type SyntheticPeerStats } from '../common/synthetic-peer.ts';

export interface PeerSpec {
  name: string;
  toneHz: number;
  colour: Rgb;
}

export type LoadCommand =
  | { id: number; cmd: 'join'; url: string; room: string; peers: PeerSpec[] }
  | { id: number; cmd: 'reset' }
  | { id: number; cmd: 'report'; freqs: number[] }
  | { id?: number; cmd: 'close' };

/** What one peer measured over a window. */
export interface PeerReport {
  name: string;
  toneHz: number;
  stats: SyntheticPeerStats;
  /** Inbound RTP counters over the window (differences since the reset). */
  rtp: SyntheticPeerRtpStats;
  /** Level of each requested frequency in the last received audio, dBFS. */
  levels: number[];
}

export type LoadReply =
  | { id: number; event: 'joined'; joinMs: number[] }
  | { id: number; event: 'reset' }
  | { id: number; event: 'report'; peers: PeerReport[] }
  | { id: number; event: 'error'; message: string };

const peers: SyntheticPeer[] = [];
const rtpAtReset = new Map<SyntheticPeer, SyntheticPeerRtpStats>();
let closing = false;

function reply(message: LoadReply | { event: 'ready' }): void {
  process.stdout.write(JSON.stringify(message) + '\n');
}

async function handle(command: LoadCommand): Promise<void> {
  switch (command.cmd) {
    case 'join': {
      const joinMs: number[] = [];
      for (const spec of command.peers) {
        const peer = new SyntheticPeer({ url: command.url, room: command.room, ...spec });
        peers.push(peer);
        const t0 = performance.now();
        await peer.join();
        joinMs.push(Math.round(performance.now() - t0));
      }
      reply({ id: command.id, event: 'joined', joinMs });
      return;
    }
    case 'reset': {
      for (const peer of peers) {
        peer.resetStats();
        rtpAtReset.set(peer, await peer.rtpStats());
      }
      reply({ id: command.id, event: 'reset' });
      return;
    }
    case 'report': {
      const reports: PeerReport[] = [];
      for (const peer of peers) {
        const rtp = await peer.rtpStats();
        reports.push({
          name: peer.options.name,
          toneHz: peer.options.toneHz,
          stats: peer.stats(),
          rtp: rtpDelta(rtp, rtpAtReset.get(peer)),
          levels: peer.toneLevels(command.freqs).map((l) => (Number.isFinite(l) ? Math.round(l * 10) / 10 : -200)),
        });
      }
      reply({ id: command.id, event: 'report', peers: reports });
      return;
    }
    case 'close':
      shutdown(0);
  }
}

function rtpDelta(now: SyntheticPeerRtpStats, then: SyntheticPeerRtpStats | undefined): SyntheticPeerRtpStats {
  const a = now.audio;
  const a0 = then?.audio;
  const v = now.video;
  const v0 = then?.video;
  return {
    audio: a && {
      packetsReceived: a.packetsReceived - (a0?.packetsReceived ?? 0),
      packetsLost: a.packetsLost - (a0?.packetsLost ?? 0),
      concealedSamples: a.concealedSamples - (a0?.concealedSamples ?? 0),
      totalSamplesReceived: a.totalSamplesReceived - (a0?.totalSamplesReceived ?? 0),
    },
    video: v && {
      framesReceived: v.framesReceived - (v0?.framesReceived ?? 0),
      framesDecoded: v.framesDecoded - (v0?.framesDecoded ?? 0),
      framesDropped: v.framesDropped - (v0?.framesDropped ?? 0),
      frameWidth: v.frameWidth,
      frameHeight: v.frameHeight,
    },
  };
}

/** Closes every peer, then ends the process explicitly (libwebrtc may crash a draining exit). */
function shutdown(code: number): void {
  if (closing) return;
  closing = true;
  for (const peer of peers) peer.close();
  setTimeout(() => process.exit(code), 300);
}

// Commands run one at a time, in order.
let chain: Promise<void> = Promise.resolve();
createInterface({ input: process.stdin })
  .on('line', (line) => {
    let command: LoadCommand;
    try {
      command = JSON.parse(line) as LoadCommand;
    } catch {
      process.stderr.write(`ignored a line that is not JSON: ${line.slice(0, 200)}\n`);
      return;
    }
    chain = chain.then(() =>
      handle(command).catch((err: unknown) => reply({ id: command.id ?? 0, event: 'error', message: (err as Error)?.message ?? String(err) })),
    );
  })
  .on('close', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
reply({ event: 'ready' });
