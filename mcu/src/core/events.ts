import type { EventEmitter } from 'node:events';
import type { Logger } from './logger.ts';

/** Emits without letting a throwing listener unwind into the caller's state machine. */
export function safeEmit<T extends Record<keyof T, unknown[]>, K extends keyof T & string>(
  emitter: EventEmitter<T>,
  log: Logger,
  event: K,
  ...args: T[K]
): void {
  try {
    (emitter as unknown as EventEmitter).emit(event, ...args);
  } catch (err) {
    log.error(`listener of "${event}" threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}
