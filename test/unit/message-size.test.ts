/**
 * The size check every signaling message passes first (validation.ts checkMessageSize): sizes as
 * the client sent them, and payloads too deeply nested to measure refused as invalid, not as an
 * internal error (found by the socket.io fuzzer: a 10 KB `[[[[...]]]]` overflowed JSON.stringify).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidMessageError, MessageTooLargeError } from '../../mcu/src/core/errors.ts';
import { checkMessageSize } from '../../mcu/src/signaling/validation.ts';

function nested(depth: number): unknown {
  // Parsed as the server's socket.io parser would: JSON.parse builds it without recursion.
  return JSON.parse('['.repeat(depth) + ']'.repeat(depth));
}

describe('checkMessageSize', () => {
  it('counts strings, bytes and JSON, and refuses what exceeds the limit', () => {
    assert.doesNotThrow(() => checkMessageSize([{ room: 'r', name: 'n' }, () => {}], 100));
    assert.throws(() => checkMessageSize(['x'.repeat(101)], 100), MessageTooLargeError);
    assert.throws(() => checkMessageSize([Buffer.alloc(101)], 100), MessageTooLargeError);
    assert.throws(() => checkMessageSize([{ name: 'x'.repeat(100) }], 100), MessageTooLargeError);
  });

  it('refuses a payload nested too deeply to measure with INVALID_MESSAGE', () => {
    assert.doesNotThrow(() => checkMessageSize([nested(100)], 65536));
    for (const depth of [5_000, 300_000]) {
      assert.throws(
        () => checkMessageSize([nested(depth)], 1_000_000),
        (err: unknown) => err instanceof InvalidMessageError && err.code === 'INVALID_MESSAGE' && /nested too deeply/.test(err.message),
        `depth ${depth}`,
      );
    }
  });
});
