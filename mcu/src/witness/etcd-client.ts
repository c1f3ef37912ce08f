/**
 * etcd v3 through its JSON gateway (etcd 3.4 and later): `POST /v3/<service>/<method>` with a
 * JSON body; keys and values are base64, 64-bit integers travel as strings, and fields at their
 * default value are left out of answers (no `succeeded`: false, no `kvs`: none, no `TTL`: 0).
 * Node's fetch keeps connections alive (one pool per endpoint), so a request on a warm connection
 * costs one round trip plus etcd's own work (a write: its raft commit and fsync).
 *
 * Endpoints are the members of the witness cluster (one in the lab, three in production). A
 * request goes to the member that answered last; when it cannot be reached, does not answer
 * within the request timeout, or answers "unavailable" (no leader, leader changed, timed out),
 * the next one is tried, each at most once per request, and then WitnessUnreachableError says
 * what each did. A write that timed out may still have been applied: callers make their writes
 * recognisable (witness.ts puts a nonce beside the epoch).
 */
import { z } from 'zod';
import { WitnessResponseError, WitnessUnreachableError } from './errors.ts';

export interface EtcdClientOptions {
  /** Client URLs of the members, e.g. `http://10.0.0.4:2379`. */
  endpoints: readonly string[];
  /** Longest wait for one member's answer, ms. */
  requestTimeoutMs: number;
}

/** One key as etcd holds it (key and value decoded as UTF-8). */
export interface KeyValue {
  key: string;
  value: string;
  /** Writes since the key was created (0: it does not exist). */
  version: number;
  modRevision: number;
  createRevision: number;
  /** The lease the key is attached to, null for none (lease ids are 64-bit: kept as strings). */
  lease: string | null;
}

/** A condition of a transaction on one key. */
export type Compare =
  | { key: string; target: 'VALUE'; result: 'EQUAL' | 'NOT_EQUAL'; value: string }
  | { key: string; target: 'VERSION'; result: 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL'; version: number }
  | { key: string; target: 'MOD'; result: 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL'; modRevision: number };

/** One operation of a transaction. */
export type TxnOp = { put: { key: string; value: string; lease?: string } } | { range: { key: string } } | { deleteRange: { key: string } };

export interface TxnRequest {
  compare: Compare[];
  success: TxnOp[];
  failure: TxnOp[];
}

export interface TxnResult {
  succeeded: boolean;
  /** One per operation of the branch that ran: the keys a `range` found (empty for the others). */
  ranges: KeyValue[][];
  revision: number;
}

/** What one request cost: the member that answered and the round trip, ms. */
export interface RequestTiming {
  endpoint: string;
  ms: number;
}

const int64 = z.union([z.string().regex(/^-?\d+$/), z.number().int()]).transform((v) => String(v));
const headerSchema = z.object({ revision: int64.optional() }).passthrough();
const kvSchema = z
  .object({
    key: z.string(),
    value: z.string().optional(),
    version: int64.optional(),
    mod_revision: int64.optional(),
    create_revision: int64.optional(),
    lease: int64.optional(),
  })
  .passthrough();
const rangeSchema = z.object({ header: headerSchema.optional(), kvs: z.array(kvSchema).optional() }).passthrough();
const txnSchema = z
  .object({
    header: headerSchema.optional(),
    succeeded: z.boolean().optional(),
    responses: z.array(z.object({ response_range: rangeSchema.optional() }).passthrough()).optional(),
  })
  .passthrough();
const grantSchema = z.object({ ID: int64.optional(), TTL: int64.optional(), error: z.string().optional() }).passthrough();
const keepAliveSchema = z.object({ result: z.object({ ID: int64.optional(), TTL: int64.optional() }).passthrough().optional() }).passthrough();
const errorSchema = z.object({ error: z.string().optional(), message: z.string().optional(), code: z.number().optional() }).passthrough();

/** gRPC codes after which another member may do better: CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE. */
const RETRY_ELSEWHERE_CODES = new Set([1, 4, 14]);
/** gRPC NOT_FOUND (a lease that expired or was revoked). */
const NOT_FOUND_CODE = 5;

/** The etcd v3 JSON gateway of a witness cluster: range, transactions and leases, with failover between members. */
export class EtcdClient {
  readonly endpoints: readonly string[];
  readonly requestTimeoutMs: number;
  /** Index of the member that answered last: asked first next time. */
  #current = 0;
  #lastTiming: RequestTiming | null = null;

  constructor(options: EtcdClientOptions) {
    if (options.endpoints.length === 0) throw new RangeError('an etcd client needs at least one endpoint');
    this.endpoints = options.endpoints.map((e) => e.replace(/\/+$/, ''));
    this.requestTimeoutMs = options.requestTimeoutMs;
  }

  /** The member asked first. */
  get endpoint(): string {
    return this.endpoints[this.#current]!;
  }

  /** The member and round trip of the last request that was answered. */
  get lastTiming(): RequestTiming | null {
    return this.#lastTiming;
  }

  /** The key, or null when it does not exist (a linearizable read: a member cut off from its quorum cannot answer it). */
  async range(key: string): Promise<KeyValue | null> {
    const body = await this.#post('/v3/kv/range', { key: b64(key) }, `a read of ${key}`);
    const parsed = this.#parse(rangeSchema, body, `a read of ${key}`);
    const kv = parsed.kvs?.[0];
    return kv ? toKeyValue(kv) : null;
  }

  /** Runs `success` if every comparison holds, else `failure`, atomically. */
  async txn(request: TxnRequest): Promise<TxnResult> {
    const what = `a transaction on ${[...new Set(request.compare.map((c) => c.key))].join(', ')}`;
    const body = await this.#post(
      '/v3/kv/txn',
      { compare: request.compare.map(compareJson), success: request.success.map(opJson), failure: request.failure.map(opJson) },
      what,
    );
    const parsed = this.#parse(txnSchema, body, what);
    return {
      succeeded: parsed.succeeded === true,
      ranges: (parsed.responses ?? []).map((r) => (r.response_range?.kvs ?? []).map(toKeyValue)),
      revision: Number(parsed.header?.revision ?? 0),
    };
  }

  /** A new lease; etcd may grant a longer TTL than asked (its minimum follows its election timeout). */
  async leaseGrant(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    const body = await this.#post('/v3/lease/grant', { TTL: String(ttlSeconds), ID: '0' }, 'a lease grant');
    const parsed = this.#parse(grantSchema, body, 'a lease grant');
    if (parsed.error) throw new WitnessResponseError(this.#lastTiming?.endpoint ?? this.endpoint, 'a lease grant', parsed.error);
    if (!parsed.ID || parsed.ID === '0') throw new WitnessResponseError(this.#lastTiming?.endpoint ?? this.endpoint, 'a lease grant', 'no lease id in the answer');
    return { id: parsed.ID, ttlSeconds: Number(parsed.TTL ?? ttlSeconds) };
  }

  /** Renews a lease; resolves with its remaining TTL in seconds, 0 when it expired or was revoked. */
  async leaseKeepAlive(id: string): Promise<number> {
    const body = await this.#post('/v3/lease/keepalive', { ID: id }, `a renewal of lease ${id}`);
    const parsed = this.#parse(keepAliveSchema, body, `a renewal of lease ${id}`);
    return Number(parsed.result?.TTL ?? 0);
  }

  /** Ends a lease and deletes the keys attached to it; a lease already gone is fine. */
  async leaseRevoke(id: string): Promise<void> {
    await this.#post('/v3/lease/revoke', { ID: id }, `a revocation of lease ${id}`, { notFoundOk: true });
  }

  /**
   * POSTs to the member that answered last, then to the others in turn. Resolves with the parsed
   * JSON answer of the first member that gives one (an answer with a non-retryable error throws
   * WitnessResponseError at once).
   */
  async #post(path: string, payload: unknown, what: string, options: { notFoundOk?: boolean } = {}): Promise<unknown> {
    const failures: string[] = [];
    const body = JSON.stringify(payload);
    for (let tried = 0; tried < this.endpoints.length; tried++) {
      const index = (this.#current + tried) % this.endpoints.length;
      const endpoint = this.endpoints[index]!;
      const started = performance.now();
      let response: Response;
      let text: string;
      const timeout = new LoopTimeout(this.requestTimeoutMs);
      try {
        response = await fetch(`${endpoint}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: timeout.signal,
        });
        text = await response.text();
      } catch (err) {
        failures.push(`${endpoint}: ${describeFetchError(err, this.requestTimeoutMs)}`);
        continue;
      } finally {
        timeout.clear();
      }
      const ms = performance.now() - started;
      let json: unknown;
      try {
        json = text === '' ? {} : JSON.parse(text);
      } catch {
        throw new WitnessResponseError(endpoint, what, `HTTP ${response.status}, not JSON: ${text.slice(0, 120)}`);
      }
      if (!response.ok) {
        const error = errorSchema.safeParse(json);
        const code = error.success ? error.data.code : undefined;
        const message = (error.success ? (error.data.message ?? error.data.error) : undefined) ?? text.slice(0, 120);
        if (options.notFoundOk && code === NOT_FOUND_CODE) {
          this.#answered(index, endpoint, ms);
          return json;
        }
        if (response.status >= 500 || (code !== undefined && RETRY_ELSEWHERE_CODES.has(code))) {
          failures.push(`${endpoint}: ${message} (HTTP ${response.status})`);
          continue;
        }
        throw new WitnessResponseError(endpoint, what, `${message} (HTTP ${response.status}${code !== undefined ? `, code ${code}` : ''})`);
      }
      this.#answered(index, endpoint, ms);
      return json;
    }
    throw new WitnessUnreachableError(what, failures);
  }

  #answered(index: number, endpoint: string, ms: number): void {
    this.#current = index;
    this.#lastTiming = { endpoint, ms };
  }

  #parse<T extends z.ZodTypeAny>(schema: T, body: unknown, what: string): z.output<T> {
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new WitnessResponseError(this.#lastTiming?.endpoint ?? this.endpoint, what, `unexpected answer (${issue?.path.join('.') || 'body'}: ${issue?.message})`);
    }
    return parsed.data as z.output<T>;
  }
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

function fromB64(text: string | undefined): string {
  return text === undefined ? '' : Buffer.from(text, 'base64').toString('utf8');
}

function toKeyValue(kv: z.output<typeof kvSchema>): KeyValue {
  return {
    key: fromB64(kv.key),
    value: fromB64(kv.value),
    version: Number(kv.version ?? 0),
    modRevision: Number(kv.mod_revision ?? 0),
    createRevision: Number(kv.create_revision ?? 0),
    lease: kv.lease === undefined || kv.lease === '0' ? null : kv.lease,
  };
}

function compareJson(c: Compare): Record<string, string> {
  switch (c.target) {
    case 'VALUE':
      return { key: b64(c.key), target: 'VALUE', result: c.result, value: b64(c.value) };
    case 'VERSION':
      return { key: b64(c.key), target: 'VERSION', result: c.result, version: String(c.version) };
    case 'MOD':
      return { key: b64(c.key), target: 'MOD', result: c.result, mod_revision: String(c.modRevision) };
  }
}

function opJson(op: TxnOp): Record<string, unknown> {
  if ('put' in op) return { request_put: { key: b64(op.put.key), value: b64(op.put.value), ...(op.put.lease ? { lease: op.put.lease } : {}) } };
  if ('range' in op) return { request_range: { key: b64(op.range.key) } };
  return { request_delete_range: { key: b64(op.deleteRange.key) } };
}

/** Tick of LoopTimeout, ms. */
const LOOP_TIMEOUT_TICK_MS = 20;

/**
 * A request timeout that counts the witness's slowness, not this process's: time in which our
 * own event loop did not run (a stall: the answer may be waiting in the socket, unread) counts as
 * at most two ticks. A plain timer would fire first after a stall (timers run before I/O) and
 * call an answered request unanswered; a primary would then fence itself for nothing.
 */
class LoopTimeout {
  readonly #controller = new AbortController();
  readonly #timer: NodeJS.Timeout;
  #counted = 0;
  #last = performance.now();

  constructor(timeoutMs: number) {
    this.#timer = setInterval(() => {
      const now = performance.now();
      this.#counted += Math.min(now - this.#last, 2 * LOOP_TIMEOUT_TICK_MS);
      this.#last = now;
      if (this.#counted >= timeoutMs) {
        clearInterval(this.#timer);
        this.#controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError'));
      }
    }, LOOP_TIMEOUT_TICK_MS);
    this.#timer.unref();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  clear(): void {
    clearInterval(this.#timer);
  }
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${timeoutMs} ms`;
  const cause = err instanceof Error ? (err.cause as NodeJS.ErrnoException | undefined) : undefined;
  if (cause?.code) return cause.code;
  return err instanceof Error ? err.message : String(err);
}
