/**
 * What the signaling fuzz targets run against: a real MCU process and an honest participant (a
 * socket.io client joined to its own room), and the checks after every case: the MCU process is
 * alive and still the same one, /status answers, the honest participant is still joined, was
 * never disconnected, gets its acknowledgements in order, and its room is unchanged.
 */
import assert from 'node:assert/strict';
import { io, type Socket } from 'socket.io-client';
import type { RosterUpdate } from '../../mcu/src/signaling/protocol.ts';
import { startMcu, type RunningMcu } from '../common/processes.ts';
import { HONEST_ROOM } from './signaling-packets.ts';

interface Ack {
  ok: boolean;
  error?: { code: string; message: string };
  participantId?: string;
}

interface StatusBody {
  role: string;
  pid: number;
  rooms: Array<{ name: string; participants: number; connected: number }>;
}

/**
 * Settings of the fuzzed MCU: few rooms, no resume grace (a fuzzer's participant leaves with its
 * connection), a small slow video grid: joins that get through cost little.
 */
export const FUZZ_MCU_ENV: Record<string, string> = {
  MCU_MAX_ROOMS: '4',
  MCU_MAX_PARTICIPANTS_PER_ROOM: '16',
  MCU_RESUME_GRACE_MS: '0',
  MCU_VIDEO_WIDTH: '160',
  MCU_VIDEO_HEIGHT: '120',
  MCU_VIDEO_FPS: '1',
  MCU_SPARE_PATHS: '0',
  // Every fuzzed connection joins from 127.0.0.1: the per-address join limit would refuse most of
  // them before their input reaches the code under test (the limiter has tests of its own).
  MCU_JOINS_PER_WINDOW: '0',
};

export class SignalingFuzzBed {
  #mcu: RunningMcu | null = null;
  #honest: Socket | null = null;
  #honestId = '';
  #disconnects = 0;
  #lastRoster: RosterUpdate | null = null;
  #checks = 0;
  #barriers = 0;
  /** Error-level lines of the MCU's log not yet reported: a fuzz case must never cause one. */
  #errorLines: string[] = [];
  /** MCU processes started because the previous one had died (0 unless a case crashed it). */
  restarts = 0;
  #dirty = false;

  /** After a failed case: the next ensure() starts everything afresh. */
  markDirty(): void {
    this.#dirty = true;
  }

  get port(): number {
    return this.#require().port;
  }
  get honestId(): string {
    return this.#honestId;
  }
  get mcu(): RunningMcu {
    return this.#require();
  }

  #require(): RunningMcu {
    if (!this.#mcu) throw new Error('SignalingFuzzBed: start() first');
    return this.#mcu;
  }

  async start(): Promise<void> {
    this.#mcu = await startMcu(FUZZ_MCU_ENV);
    this.#errorLines = [];
    // Text log format: `<time> <level> [<module>] <message>`.
    this.#mcu.process.on('stderr', (line) => {
      if (/^\S+ error /.test(line) || !/^\S+ (warn|info|debug) /.test(line)) this.#errorLines.push(line);
    });
    const socket = io(this.#mcu.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    this.#honest = socket;
    this.#disconnects = 0;
    socket.on('disconnect', () => this.#disconnects++);
    socket.on('roster', (r: RosterUpdate) => {
      if (r.room === HONEST_ROOM) this.#lastRoster = r;
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    const joined = (await socket.timeout(5000).emitWithAck('join', { room: HONEST_ROOM, name: 'Honest' })) as Ack;
    assert.equal(joined.ok, true, `the honest participant could not join: ${JSON.stringify(joined)}`);
    this.#honestId = joined.participantId!;
  }

  /** Before a case: a healthy MCU and an honest participant in its room; anything dead (counted) or left by a failed case is replaced. */
  async ensure(): Promise<void> {
    const healthy = this.#mcu !== null && this.#mcu.process.running && this.#honest?.connected === true && this.#disconnects === 0;
    if (healthy && !this.#dirty) return;
    if (this.#mcu && !this.#mcu.process.running) this.restarts++;
    this.#dirty = false;
    await this.close();
    await this.start();
  }

  /**
   * After a case. Always: the process runs, the honest participant is connected, never
   * disconnected, four pipelined requests are acknowledged in order, and the case left no
   * error in the MCU's log (the last request is a barrier for that). Every
   * `statusEvery` checks (and when asked): /status names the same primary with the honest room
   * whole, and the honest participant's latest roster shows it alone and unmuted.
   */
  async check(options: { full?: boolean; statusEvery?: number } = {}): Promise<void> {
    const mcu = this.#require();
    const honest = this.#honest!;
    assert.ok(mcu.process.running, `the MCU process exited: ${JSON.stringify(mcu.process.child.exitCode ?? mcu.process.child.signalCode)}\n${mcu.process.stderrTail}`);
    assert.equal(this.#disconnects, 0, 'the honest participant was disconnected');
    assert.ok(honest.connected, 'the honest participant is not connected');
    // Requests that change nothing (the state they assert is the current one), answered in order;
    // the last one is refused on purpose: its line in the MCU's log is a barrier, every line the
    // case caused is in by then.
    const barrier = `fuzz-barrier-${++this.#barriers}`;
    const logged = this.logLine((line) => line.includes(barrier));
    const requests: Array<{ kind: string; muted: boolean }> = [
      { kind: 'audio', muted: false },
      { kind: 'video', muted: false },
      { kind: 'audio', muted: false },
      { kind: barrier, muted: false },
    ];
    const order: number[] = [];
    const acks = await Promise.all(
      requests.map((payload, n) =>
        (honest.timeout(5000).emitWithAck('mute', payload) as Promise<Ack>).then((ack) => {
          order.push(n);
          return ack;
        }),
      ),
    );
    assert.deepEqual(order, [0, 1, 2, 3], 'acknowledgements out of order');
    for (const ack of acks.slice(0, 3)) assert.equal(ack.ok, true, `the honest participant's request was refused: ${JSON.stringify(ack)}`);
    assert.equal(acks[3]!.error?.code, 'INVALID_MESSAGE', `the barrier request: ${JSON.stringify(acks[3])}`);
    await logged;
    const errors = this.#errorLines.splice(0);
    assert.deepEqual(errors, [], 'the MCU logged errors (or wrote outside its logger)');
    this.#checks++;
    if (!options.full && this.#checks % (options.statusEvery ?? 10) !== 0) return;
    const status = (await (await fetch(`${mcu.adminUrl}/status`)).json()) as StatusBody;
    assert.equal(status.role, 'primary');
    assert.equal(status.pid, mcu.process.pid, 'another process answers /status');
    const room = status.rooms.find((r) => r.name === HONEST_ROOM);
    assert.deepEqual(room, { name: HONEST_ROOM, participants: 1, connected: 1 }, `the honest room changed: ${JSON.stringify(status.rooms)}`);
    const roster = this.#lastRoster?.participants ?? [];
    if (roster.length > 0) {
      assert.deepEqual(
        roster.map((p) => ({ id: p.id, name: p.name, audioMuted: p.audioMuted, videoMuted: p.videoMuted, connected: p.connected })),
        [{ id: this.#honestId, name: 'Honest', audioMuted: false, videoMuted: false, connected: true }],
        'the honest room roster changed',
      );
    }
  }

  /** Signaling requests the MCU refused since it started, by error code (its /metrics): how deep the fuzzed input reached. */
  async refusals(): Promise<Record<string, number>> {
    const text = await (await fetch(`${this.#require().adminUrl}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^mcu_signaling_errors_total\{code="([A-Z_]+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
    return out;
  }

  /** Waits for a line of the MCU's stderr (its log) that passes `predicate`, seen already or to come. */
  async logLine(predicate: (line: string) => boolean, timeoutMs = 5000): Promise<string> {
    const proc = this.#require().process;
    const seen = proc.stderr.filter(predicate);
    if (seen.length > 0) return seen[seen.length - 1]!;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.off('stderr', on);
        reject(new Error(`no such MCU log line within ${timeoutMs} ms; last lines:\n${proc.stderr.slice(-10).join('\n')}`));
      }, timeoutMs);
      const on = (line: string): void => {
        if (!predicate(line)) return;
        clearTimeout(timer);
        proc.off('stderr', on);
        resolve(line);
      };
      proc.on('stderr', on);
    });
  }

  async close(): Promise<void> {
    this.#honest?.disconnect();
    this.#honest = null;
    const mcu = this.#mcu;
    this.#mcu = null;
    await mcu?.stop();
  }
}
