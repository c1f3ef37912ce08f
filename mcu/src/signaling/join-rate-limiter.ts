/**
 * The per-address join limit: at most `maxJoins` fresh joins from one client address within any
 * `windowMs` (a sliding window, exact). Pure: time comes from the injected clock, nothing is
 * scheduled. Memory stays bounded by the addresses seen within one window: whatever is older is
 * swept once per window.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface JoinRateLimiterOptions {
  /** Most joins accepted from one address within `windowMs`; 0 = no limit. */
  maxJoins: number;
  /** Length of the sliding window, ms (> 0). */
  windowMs: number;
  /** A monotonic clock in ms (default performance.now). */
  now?: () => number;
}

export type JoinDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

export class JoinRateLimiter {
  readonly maxJoins: number;
  readonly windowMs: number;
  readonly #now: () => number;
  /** Per address key: the times of its joins still inside the window, oldest first (at most maxJoins). */
  readonly #joins = new Map<string, number[]>();
  #lastSweep = -Infinity;

  constructor(options: JoinRateLimiterOptions) {
    if (!Number.isInteger(options.maxJoins) || options.maxJoins < 0) throw new RangeError(`maxJoins must be an integer >= 0, got ${options.maxJoins}`);
    if (!(options.windowMs > 0)) throw new RangeError(`windowMs must be > 0, got ${options.windowMs}`);
    this.maxJoins = options.maxJoins;
    this.windowMs = options.windowMs;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Counts a join from `address` if the limit allows it; otherwise says when it will. */
  take(address: string): JoinDecision {
    if (this.maxJoins === 0) return { allowed: true };
    const now = this.#now();
    this.#sweep(now);
    const key = addressKey(address);
    let times = this.#joins.get(key);
    if (!times) {
      times = [];
      this.#joins.set(key, times);
    }
    while (times.length > 0 && times[0]! + this.windowMs <= now) times.shift();
    if (times.length >= this.maxJoins) return { allowed: false, retryAfterMs: times[0]! + this.windowMs - now };
    times.push(now);
    return { allowed: true };
  }

  /** Addresses with a join inside the window (or not swept yet). */
  get trackedAddresses(): number {
    return this.#joins.size;
  }

  #sweep(now: number): void {
    if (now - this.#lastSweep < this.windowMs) return;
    this.#lastSweep = now;
    for (const [key, times] of this.#joins) {
      if (times.length === 0 || times[times.length - 1]! + this.windowMs <= now) this.#joins.delete(key);
    }
  }
}

/**
 * What one client is: an IPv4 address (also when IPv4-mapped), or an IPv6 /64 (one host's
 * usual allocation, whose 2^64 addresses it may rotate through freely). Anything else as given.
 */
export function addressKey(address: string): string {
  const plain = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(plain);
  if (mapped) return mapped[1]!;
  if (isIPv4(plain) || !isIPv6(plain)) return plain;
  return `${expandIPv6(plain).slice(0, 4).join(':')}::/64`;
}

/** The eight hextets of a valid IPv6 address, without leading zeros. */
function expandIPv6(address: string): string[] {
  let text = address.toLowerCase();
  // A trailing dotted quad stands for the last two hextets.
  const quad = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, null];
  const left = head === '' ? [] : head.split(':');
  const right = tail === null || tail === '' ? [] : tail.split(':');
  const zeros = tail === null ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((h) => parseInt(h, 16).toString(16));
}
