import type { Logger } from './logger.ts';

/**
 * A log line anyone on the network can trigger (a forged datagram, a garbage connection): the
 * first of a burst is logged at once, the next ones only counted, and the count logged at the
 * end of each interval in which more came. A flood costs one line per interval, not one per
 * packet, and no occurrence goes unmentioned.
 */
export class ThrottledLog {
  readonly #log: Logger;
  readonly #level: 'error' | 'warn' | 'info';
  readonly #message: string;
  readonly #intervalMs: number;
  #suppressed = 0;
  #lastMeta: Record<string, unknown> = {};
  #window: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(log: Logger, level: 'error' | 'warn' | 'info', message: string, intervalMs = 1000) {
    this.#log = log;
    this.#level = level;
    this.#message = message;
    this.#intervalMs = intervalMs;
  }

  /** One occurrence, with what to say about it (the summary line carries the latest one's). */
  note(meta: Record<string, unknown>): void {
    if (this.#closed) return;
    if (this.#window === null) {
      this.#log.log(this.#level, this.#message, meta);
      this.#openWindow();
      return;
    }
    this.#suppressed++;
    this.#lastMeta = meta;
  }

  #openWindow(): void {
    this.#window = setTimeout(() => this.#flush(), this.#intervalMs);
    this.#window.unref();
  }

  #flush(): void {
    this.#window = null;
    if (this.#suppressed === 0) return;
    const n = this.#suppressed;
    this.#suppressed = 0;
    this.#log.log(this.#level, `${this.#message}: ${n} more in the last ${this.#intervalMs} ms, the latest:`, { ...this.#lastMeta, more: n });
    // Still flooding: the next summary comes one interval later at the earliest.
    this.#openWindow();
  }

  /** Idempotent: logs what is still counted, then ignores further occurrences. */
  close(): void {
    if (this.#closed) return;
    if (this.#window) clearTimeout(this.#window);
    this.#flush();
    if (this.#window) clearTimeout(this.#window);
    this.#window = null;
    this.#closed = true;
  }
}
