/**
 * The standby's view of the primary's signaling connections (design notes sections 3 and 4):
 * one TransportRecord per connection (from 'transport' blobs and the snapshot extra) and its
 * output log, the bytes the primary committed before writing them. A takeover rewrites the log
 * from the client's last ACK onward, so the log must be contiguous: a gap or a conflicting
 * overlap marks the connection unsafe (never silently patched). The capture side prunes what
 * the client acknowledged (prune()).
 */
import { EventEmitter } from 'node:events';
import { createLogger, type Logger } from '../../core/logger.ts';
import { safeEmit } from '../../core/events.ts';
import {
  BlobKind,
  SnapshotExtraKey,
  decodeOutputChunk,
  parseBlob,
  parseSnapshotExtra,
  type InputUpdate,
  type TransportBlob,
  type TransportCloseReason,
} from '../../wire/index.ts';
import type { OutputLogChunk, TransportRecord } from './transport-record.ts';
import type { ReplicationClient } from '../../replication/replication-client.ts';

/** A read-only view of one stored connection. */
export interface StoredTransport {
  /** consumedInput: in force (its output is all in the log); committedOutput: the log's end. */
  readonly record: TransportRecord;
  /** First output offset this standby was ever sent; bytes before it reached the client without us. */
  readonly logStart: number;
  /** First offset still held (>= logStart): everything before was acknowledged by the client. */
  readonly prunedTo: number;
  /** Offset after the last byte held (= record.committedOutput). */
  readonly logEnd: number;
  /** Bytes held: logEnd - prunedTo. */
  readonly retainedBytes: number;
  /** False once the log or the record cannot be trusted for a takeover (gap, conflict, bad prune). */
  readonly safe: boolean;
  readonly unsafeReason: string | null;
  /** Consumed-input updates waiting for their output to reach the log. */
  readonly pendingInput: readonly InputUpdate[];
}

/** What a takeover rewrites after the client's last ACK, or why it cannot. */
export type ResumeCheck = { ok: true; data: Buffer; fromOffset: number } | { ok: false; reason: string };

export interface TransportStoreSnapshotEntry {
  record: TransportRecord;
  logStart: number;
  prunedTo: number;
  logEnd: number;
  safe: boolean;
  unsafeReason: string | null;
  pendingInput: InputUpdate[];
  /** The held log bytes, base64 (only with `includeLog`). */
  log?: string;
}

export interface TransportStoreStats {
  connections: number;
  unsafe: number;
  retainedBytes: number;
  chunksApplied: number;
  bytesApplied: number;
  /** Chunks wholly inside what was already held (identical bytes): ignored. */
  duplicateChunks: number;
  /** Chunks for connections we have no record of. */
  orphanChunks: number;
  prunedBytes: number;
  closed: number;
  malformed: number;
}

export type TransportStoreEvents = {
  /** A record appeared (accept blob or snapshot). */
  connection: [record: TransportRecord];
  /** The primary closed it; its log is dropped. */
  closed: [connId: string, reason: TransportCloseReason];
  /** The connection can no longer be taken over safely. */
  unsafe: [connId: string, reason: string];
  /** All records were replaced by a snapshot's. */
  reset: [connections: number];
};

export interface TransportStoreOptions {
  /** Held log bytes per connection beyond which a warning is logged once (default 8 MiB; nothing is dropped). */
  warnRetainedBytes?: number;
}

interface Entry {
  record: TransportRecord;
  logStart: number;
  prunedTo: number;
  logEnd: number;
  /** Contiguous chunks covering [prunedTo, logEnd). */
  chunks: OutputLogChunk[];
  retainedBytes: number;
  unsafeReason: string | null;
  pendingInput: InputUpdate[];
  warnedSize: boolean;
}

/**
 * Records and output logs by connection id. Fed by a ReplicationClient (follow()) or directly
 * (loadSnapshotExtra, applyBlob, applyBinary); every method is synchronous, so a frame is stored
 * before the client acknowledges it.
 */
export class TransportStore extends EventEmitter<TransportStoreEvents> {
  readonly #entries = new Map<string, Entry>();
  readonly #log: Logger = createLogger('transport-store', { role: 'standby' });
  readonly #warnRetainedBytes: number;
  #stats = { chunksApplied: 0, bytesApplied: 0, duplicateChunks: 0, orphanChunks: 0, prunedBytes: 0, closed: 0, malformed: 0 };

  constructor(options: TransportStoreOptions = {}) {
    super();
    this.#warnRetainedBytes = options.warnRetainedBytes ?? 8 * 1024 * 1024;
  }

  /**
   * Keeps this store in step with a replication client: each new primary connection's snapshot
   * replaces everything, then 'transport' blobs and output-log frames apply in order. Returns
   * the function that stops following.
   */
  follow(client: ReplicationClient): () => void {
    const onSynced = (): void => this.loadSnapshotExtra(client.store.extra);
    const onBlob = (kind: string, data: unknown): void => {
      if (kind === BlobKind.Transport) this.applyBlob(data);
    };
    const onBinary = (data: Buffer): void => this.applyBinary(data);
    client.on('synced', onSynced);
    client.on('blob', onBlob);
    client.on('binary', onBinary);
    return () => {
      client.off('synced', onSynced);
      client.off('blob', onBlob);
      client.off('binary', onBinary);
    };
  }

  /**
   * Replaces every record with the snapshot extra's (a missing one means no connections).
   * Connections held before and absent now closed meanwhile: each gets a 'closed' event.
   */
  loadSnapshotExtra(extra: Readonly<Record<string, unknown>>): void {
    const before = [...this.#entries.keys()];
    this.#entries.clear();
    const raw = extra[SnapshotExtraKey.Transports];
    if (raw !== undefined) {
      try {
        const parsed = parseSnapshotExtra(SnapshotExtraKey.Transports, raw);
        for (const c of parsed.connections) {
          const entry = this.#newEntry(c.record, c.logStart);
          entry.pendingInput = c.pendingInput.map((u) => ({ ...u }));
          this.#applyPendingInput(entry);
        }
      } catch (err) {
        this.#stats.malformed++;
        this.#log.error(`snapshot's transport records refused: ${errorText(err)}`);
      }
    }
    for (const connId of before) if (!this.#entries.has(connId)) safeEmit(this, this.#log, 'closed', connId, 'closed');
    safeEmit(this, this.#log, 'reset', this.#entries.size);
    for (const e of this.#entries.values()) safeEmit(this, this.#log, 'connection', { ...e.record });
  }

  /** Applies one 'transport' blob payload; a malformed one is logged and counted, nothing applied. */
  applyBlob(data: unknown): void {
    let blob: TransportBlob;
    try {
      blob = parseBlob(BlobKind.Transport, data);
    } catch (err) {
      this.#stats.malformed++;
      this.#log.error(errorText(err));
      return;
    }
    switch (blob.op) {
      case 'accept': {
        if (this.#entries.has(blob.record.connId)) this.#log.warn(`connection ${blob.record.connId} accepted twice: replacing its record`);
        const entry = this.#newEntry(blob.record, blob.logStart);
        safeEmit(this, this.#log, 'connection', { ...entry.record });
        return;
      }
      case 'close': {
        if (!this.#entries.delete(blob.connId)) return;
        this.#stats.closed++;
        safeEmit(this, this.#log, 'closed', blob.connId, blob.reason);
        return;
      }
      case 'input':
        for (const update of blob.updates) {
          const entry = this.#entries.get(update.connId);
          if (!entry) continue;
          const last = entry.pendingInput[entry.pendingInput.length - 1];
          const newest = last?.consumedInput ?? entry.record.consumedInput;
          if (update.consumedInput <= newest) continue;
          entry.pendingInput.push({ ...update });
          this.#applyPendingInput(entry);
        }
        return;
    }
  }

  /** Applies one binary replication frame (an OutputLogChunk). */
  applyBinary(data: Buffer): void {
    let chunk: OutputLogChunk;
    try {
      chunk = decodeOutputChunk(data);
    } catch (err) {
      this.#stats.malformed++;
      this.#log.error(`binary frame is not an output-log chunk: ${errorText(err)}`);
      return;
    }
    this.appendChunk(chunk);
  }

  /** Appends a chunk to its connection's log: it must start at the log's end (or repeat held bytes exactly). */
  appendChunk(chunk: OutputLogChunk): void {
    const entry = this.#entries.get(chunk.connId);
    if (!entry) {
      this.#stats.orphanChunks++;
      this.#log.error(`output-log chunk for unknown connection ${chunk.connId} at offset ${chunk.offset} (${chunk.data.length} bytes)`);
      return;
    }
    if (entry.unsafeReason !== null) return;
    const end = chunk.offset + chunk.data.length;
    if (chunk.offset > entry.logEnd) {
      this.#markUnsafe(entry, `gap in the output log: chunk at ${chunk.offset}, log ends at ${entry.logEnd}`);
      return;
    }
    let data = chunk.data;
    if (chunk.offset < entry.logEnd) {
      // Overlap: allowed only where the bytes are identical (a resend), and only over held bytes.
      if (chunk.offset < entry.prunedTo) {
        this.#markUnsafe(entry, `chunk at ${chunk.offset} overlaps pruned output (held from ${entry.prunedTo})`);
        return;
      }
      const overlap = Math.min(end, entry.logEnd) - chunk.offset;
      const held = this.#read(entry, chunk.offset, chunk.offset + overlap);
      if (!held.equals(data.subarray(0, overlap))) {
        this.#markUnsafe(entry, `chunk at ${chunk.offset} rewrites ${overlap} held bytes with different ones`);
        return;
      }
      if (end <= entry.logEnd) {
        this.#stats.duplicateChunks++;
        return;
      }
      data = data.subarray(overlap);
    }
    // Copied: the frame's buffer may be a slice of a much larger read.
    const stored = Buffer.from(data);
    entry.chunks.push({ connId: chunk.connId, offset: entry.logEnd, data: stored });
    entry.logEnd += stored.length;
    entry.retainedBytes += stored.length;
    entry.record.committedOutput = entry.logEnd;
    this.#stats.chunksApplied++;
    this.#stats.bytesApplied += stored.length;
    this.#applyPendingInput(entry);
    if (!entry.warnedSize && entry.retainedBytes > this.#warnRetainedBytes) {
      entry.warnedSize = true;
      this.#log.warn(`connection ${chunk.connId} holds ${entry.retainedBytes} bytes of output log: is prune() being called?`);
    }
  }

  /**
   * Drops held output below `offset` (the client acknowledged it). An offset beyond the log's
   * end means the client has bytes we never got: the connection is marked unsafe. Returns the
   * bytes dropped.
   */
  prune(connId: string, offset: number): number {
    const entry = this.#entries.get(connId);
    if (!entry || offset <= entry.prunedTo) return 0;
    if (offset > entry.logEnd) {
      this.#markUnsafe(entry, `client acknowledged output up to ${offset}, beyond the log's end ${entry.logEnd}`);
      return 0;
    }
    let dropped = 0;
    while (entry.chunks.length > 0) {
      const first = entry.chunks[0]!;
      const firstEnd = first.offset + first.data.length;
      if (firstEnd <= offset) {
        entry.chunks.shift();
        dropped += first.data.length;
        continue;
      }
      if (first.offset < offset) {
        const cut = offset - first.offset;
        entry.chunks[0] = { connId, offset, data: Buffer.from(first.data.subarray(cut)) };
        dropped += cut;
      }
      break;
    }
    entry.prunedTo = offset;
    entry.retainedBytes -= dropped;
    this.#stats.prunedBytes += dropped;
    return dropped;
  }

  /**
   * What a takeover writes after the client's last ACK (as an output offset): the held bytes
   * from there to the log's end. Not possible when the connection is unsafe, or when the client
   * lacks bytes this standby never had or already dropped.
   */
  resumeFrom(connId: string, clientAckOffset: number): ResumeCheck {
    const entry = this.#entries.get(connId);
    if (!entry) return { ok: false, reason: `no record of connection ${connId}` };
    if (entry.unsafeReason !== null) return { ok: false, reason: entry.unsafeReason };
    if (clientAckOffset < entry.logStart) {
      return { ok: false, reason: `client acknowledged output up to ${clientAckOffset} only; the log starts at ${entry.logStart} (standby synced mid-connection)` };
    }
    if (clientAckOffset < entry.prunedTo) {
      return { ok: false, reason: `client acknowledged output up to ${clientAckOffset}, but the log was pruned to ${entry.prunedTo}` };
    }
    if (clientAckOffset > entry.logEnd) {
      return { ok: false, reason: `client acknowledged output up to ${clientAckOffset}, beyond the log's end ${entry.logEnd}` };
    }
    return { ok: true, data: this.#read(entry, clientAckOffset, entry.logEnd), fromOffset: clientAckOffset };
  }

  get(connId: string): StoredTransport | undefined {
    const e = this.#entries.get(connId);
    return e && view(e);
  }

  connectionIds(): string[] {
    return [...this.#entries.keys()];
  }

  /** The held log bytes of a connection from `from` (default: all held) to its end. */
  outputLog(connId: string, from?: number): Buffer {
    const entry = this.#entries.get(connId);
    if (!entry) return Buffer.alloc(0);
    return this.#read(entry, Math.max(from ?? entry.prunedTo, entry.prunedTo), entry.logEnd);
  }

  /** Marks a connection unsafe from outside (e.g. the capture missed client bytes the primary acknowledged). */
  markUnsafe(connId: string, reason: string): void {
    const entry = this.#entries.get(connId);
    if (entry) this.#markUnsafe(entry, reason);
  }

  /** A JSON-friendly copy of everything, for tests and /status. */
  snapshot(options: { includeLog?: boolean } = {}): Record<string, TransportStoreSnapshotEntry> {
    const out: Record<string, TransportStoreSnapshotEntry> = {};
    for (const [connId, e] of this.#entries) {
      out[connId] = {
        record: { ...e.record, local: { ...e.record.local }, remote: { ...e.record.remote } },
        logStart: e.logStart,
        prunedTo: e.prunedTo,
        logEnd: e.logEnd,
        safe: e.unsafeReason === null,
        unsafeReason: e.unsafeReason,
        pendingInput: e.pendingInput.map((u) => ({ ...u })),
        ...(options.includeLog ? { log: this.#read(e, e.prunedTo, e.logEnd).toString('base64') } : {}),
      };
    }
    return out;
  }

  stats(): TransportStoreStats {
    let unsafe = 0;
    let retainedBytes = 0;
    for (const e of this.#entries.values()) {
      if (e.unsafeReason !== null) unsafe++;
      retainedBytes += e.retainedBytes;
    }
    return { connections: this.#entries.size, unsafe, retainedBytes, ...this.#stats };
  }

  /** Forgets everything (a promoted standby that rebuilt its connections). */
  clear(): void {
    this.#entries.clear();
  }

  #newEntry(record: TransportRecord, logStart: number): Entry {
    const entry: Entry = {
      record: { ...record, local: { ...record.local }, remote: { ...record.remote }, committedOutput: logStart },
      logStart,
      prunedTo: logStart,
      logEnd: logStart,
      chunks: [],
      retainedBytes: 0,
      unsafeReason: null,
      pendingInput: [],
      warnedSize: false,
    };
    this.#entries.set(record.connId, entry);
    return entry;
  }

  /** Updates whose output is all in the log come into force, in order. */
  #applyPendingInput(entry: Entry): void {
    const pending = entry.pendingInput;
    while (pending.length > 0 && pending[0]!.outputAt <= entry.logEnd) {
      const update = pending.shift()!;
      if (update.consumedInput > entry.record.consumedInput) entry.record.consumedInput = update.consumedInput;
    }
  }

  #read(entry: Entry, from: number, to: number): Buffer {
    if (to <= from) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for (const c of entry.chunks) {
      const cEnd = c.offset + c.data.length;
      if (cEnd <= from) continue;
      if (c.offset >= to) break;
      parts.push(c.data.subarray(Math.max(0, from - c.offset), Math.min(c.data.length, to - c.offset)));
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  #markUnsafe(entry: Entry, reason: string): void {
    if (entry.unsafeReason !== null) return;
    entry.unsafeReason = reason;
    this.#log.error(`connection ${entry.record.connId} cannot be taken over: ${reason}`, { conn: entry.record.connId });
    safeEmit(this, this.#log, 'unsafe', entry.record.connId, reason);
  }
}

function view(e: Entry): StoredTransport {
  return {
    record: { ...e.record, local: { ...e.record.local }, remote: { ...e.record.remote } },
    logStart: e.logStart,
    prunedTo: e.prunedTo,
    logEnd: e.logEnd,
    retainedBytes: e.retainedBytes,
    safe: e.unsafeReason === null,
    unsafeReason: e.unsafeReason,
    pendingInput: e.pendingInput.map((u) => ({ ...u })),
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
