/**
 * Shared pieces of the takeover-rebuild integration test's fixtures: the numbered-line
 * protocol both server sides speak (the primary, then the standby that took over) and
 * the side channel standing in for replication (primary -> standby: the
 * TransportRecord at accept, output-log chunks that the standby acknowledges before
 * the primary writes them (output commit), the consumed input offset at line
 * boundaries with the line count it stands for).
 *
 * Frames: u32 length (of what follows) | u8 type | body.
 */
import { createInterface } from 'node:readline';
import type { OutputLogChunk, TransportRecord } from '../../mcu/src/takeover/transport/transport-record.ts';
import { decodeOutputChunk, encodeOutputChunk } from '../../mcu/src/wire/index.ts';

export const FrameType = {
  /** JSON TransportRecord, once per connection, before its first chunk. */
  record: 1,
  /** encodeOutputChunk(): bytes the primary is about to write. */
  output: 2,
  /** JSON ConsumedUpdate. */
  consumed: 3,
  /** JSON CommitAck (standby -> primary): the log holds everything below `committed`. */
  commitAck: 4,
} as const;

export interface ConsumedUpdate {
  connId: string;
  consumedInput: number;
  /** Client lines the application consumed: its state at that offset. */
  linesConsumed: number;
}

export interface CommitAck {
  connId: string;
  committed: number;
}

export type ReplicationFrame =
  | { type: typeof FrameType.record; record: TransportRecord }
  | { type: typeof FrameType.output; chunk: OutputLogChunk }
  | { type: typeof FrameType.consumed; update: ConsumedUpdate }
  | { type: typeof FrameType.commitAck; ack: CommitAck };

export function encodeFrame(frame: ReplicationFrame): Buffer {
  let body: Buffer;
  switch (frame.type) {
    case FrameType.record:
      body = Buffer.from(JSON.stringify(frame.record));
      break;
    case FrameType.output:
      body = encodeOutputChunk(frame.chunk);
      break;
    case FrameType.consumed:
      body = Buffer.from(JSON.stringify(frame.update));
      break;
    case FrameType.commitAck:
      body = Buffer.from(JSON.stringify(frame.ack));
      break;
  }
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1, 0);
  head[4] = frame.type;
  return Buffer.concat([head, body]);
}

/** Splits a byte stream into replication frames. */
export class FrameReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(data: Buffer): ReplicationFrame[] {
    this.#buffer = this.#buffer.length === 0 ? data : Buffer.concat([this.#buffer, data]);
    const frames: ReplicationFrame[] = [];
    while (this.#buffer.length >= 4) {
      const length = this.#buffer.readUInt32BE(0);
      if (this.#buffer.length < 4 + length) break;
      const type = this.#buffer[4];
      const body = this.#buffer.subarray(5, 4 + length);
      this.#buffer = this.#buffer.subarray(4 + length);
      switch (type) {
        case FrameType.record:
          frames.push({ type, record: JSON.parse(body.toString()) as TransportRecord });
          break;
        case FrameType.output:
          frames.push({ type, chunk: decodeOutputChunk(Buffer.from(body)) });
          break;
        case FrameType.consumed:
          frames.push({ type, update: JSON.parse(body.toString()) as ConsumedUpdate });
          break;
        case FrameType.commitAck:
          frames.push({ type, ack: JSON.parse(body.toString()) as CommitAck });
          break;
        default:
          throw new Error(`unknown replication frame type ${type}`);
      }
    }
    return frames;
  }
}

/**
 * The server side of the line protocol: consumes "c N\n" lines from the client
 * (checking N), and numbers its own "s N\n" lines. Its state at a line boundary
 * (consumed offset, lines consumed, lines written) is all a takeover needs.
 */
export class LineServerSession {
  /** Client bytes consumed, always at a line boundary (a partial line stays unconsumed). */
  consumed: number;
  linesConsumed: number;
  nextServerLine: number;
  /** N of the client's "cdone N", once received. */
  clientDone: number | undefined;
  readonly errors: string[] = [];
  #partial: Buffer = Buffer.alloc(0);

  constructor(state: { consumed?: number; linesConsumed?: number; nextServerLine?: number } = {}) {
    this.consumed = state.consumed ?? 0;
    this.linesConsumed = state.linesConsumed ?? 0;
    this.nextServerLine = state.nextServerLine ?? 0;
  }

  /** Feeds client bytes; returns true when at least one complete line was consumed. */
  input(data: Buffer): boolean {
    this.#partial = this.#partial.length === 0 ? Buffer.from(data) : Buffer.concat([this.#partial, data]);
    let progressed = false;
    for (;;) {
      const nl = this.#partial.indexOf(0x0a);
      if (nl < 0) break;
      const line = this.#partial.subarray(0, nl).toString('latin1');
      this.#partial = this.#partial.subarray(nl + 1);
      this.consumed += nl + 1;
      progressed = true;
      const done = /^cdone (\d+)$/.exec(line);
      if (done) {
        this.clientDone = Number(done[1]);
        continue;
      }
      if (line !== `c ${this.linesConsumed}`) {
        if (this.errors.length < 20) this.errors.push(`expected "c ${this.linesConsumed}", got ${JSON.stringify(line.slice(0, 40))} at offset ${this.consumed - nl - 1}`);
      } else {
        this.linesConsumed++;
      }
    }
    return progressed;
  }

  /** The next server line ("s N\n", with `padding` extra bytes before the newline). */
  nextLine(padding = 0): Buffer {
    const n = this.nextServerLine++;
    return Buffer.from(padding > 0 ? `s ${n} ${'x'.repeat(padding)}\n` : `s ${n}\n`, 'latin1');
  }
}

/** Number of newline bytes in a buffer (server lines committed). */
export function countLines(data: Buffer): number {
  let n = 0;
  for (let i = data.indexOf(0x0a); i >= 0; i = data.indexOf(0x0a, i + 1)) n++;
  return n;
}

/** One JSON line on stdout (the LabProcess protocol). */
export function emit(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ event, t: Date.now(), ...fields }) + '\n');
}

/** A command a fixture receives as one JSON line on stdin. */
export type FixtureCommand = { op?: string; id?: unknown } & Record<string, unknown>;
export type FixtureOps = Record<string, (cmd: FixtureCommand) => Promise<Record<string, unknown>> | Record<string, unknown>>;

/**
 * The fixtures' command loop (the LabProcess protocol): each stdin line is a command, answered
 * by an `ack` event carrying its id; stdin closing (the parent went away) ends the process,
 * so nothing lingers in a namespace.
 */
export function serveCommands(ops: FixtureOps): void {
  createInterface({ input: process.stdin }).on('line', (line) => {
    let cmd: FixtureCommand;
    try {
      cmd = JSON.parse(line) as FixtureCommand;
    } catch {
      emit('bad-command', { line });
      return;
    }
    const op = cmd.op === undefined ? undefined : ops[cmd.op];
    const run = async (): Promise<Record<string, unknown>> => (op ? op(cmd) : { error: `unknown op ${String(cmd.op)}` });
    run().then(
      (result) => emit('ack', { id: cmd.id, ...result }),
      (err: Error) => emit('ack', { id: cmd.id, error: `${err.name}: ${err.message}` }),
    );
  });
  process.stdin.on('end', () => process.exit(0));
}
