/**
 * The per-address join limit, on an injected clock: exact at the window's edges, one budget per
 * client (IPv4-mapped = IPv4, an IPv6 /64 = one client), memory that does not outlive the window,
 * and, as a property over random join streams, never more than the limit in any window while
 * refusing only when the limit is reached.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { JoinRateLimiter, addressKey } from '../../mcu/src/signaling/join-rate-limiter.ts';

function limiter(maxJoins: number, windowMs: number): { l: JoinRateLimiter; clock: { t: number } } {
  const clock = { t: 1000 };
  return { l: new JoinRateLimiter({ maxJoins, windowMs, now: () => clock.t }), clock };
}

describe('join rate limiter', () => {
  it('accepts the limit within a window, refuses the next with the exact wait, and accepts again when the oldest join leaves the window', () => {
    const { l, clock } = limiter(3, 10_000);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(l.take('10.0.0.1'), { allowed: true });
      clock.t += 1000;
    }
    // Joins at 1000, 2000, 3000; now 4000: the first leaves the window at 11000.
    assert.deepEqual(l.take('10.0.0.1'), { allowed: false, retryAfterMs: 7000 });
    clock.t = 10_999;
    assert.deepEqual(l.take('10.0.0.1'), { allowed: false, retryAfterMs: 1 });
    clock.t = 11_000;
    assert.deepEqual(l.take('10.0.0.1'), { allowed: true }, 'a join counts for exactly windowMs');
    assert.equal(l.take('10.0.0.1').allowed, false, 'the refusals did not count, the new join did');
  });

  it('one budget per client address; IPv4-mapped IPv6 is the IPv4 address, an IPv6 /64 is one client', () => {
    const { l } = limiter(1, 10_000);
    assert.equal(l.take('10.0.0.1').allowed, true);
    assert.equal(l.take('::ffff:10.0.0.1').allowed, false);
    assert.equal(l.take('10.0.0.2').allowed, true);
    assert.equal(l.take('2001:db8:1:2::1').allowed, true);
    assert.equal(l.take('2001:db8:1:2:ffff:ffff:ffff:ffff').allowed, false, 'the same /64');
    assert.equal(l.take('2001:0db8:0001:0002:0:0:0:77%eth0').allowed, false, 'the same /64, written in full with a zone');
    assert.equal(l.take('2001:db8:1:3::1').allowed, true, 'the next /64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
    assert.equal(addressKey('unknown'), 'unknown');
  });

  it('0 joins per window is no limit', () => {
    const { l } = limiter(0, 1000);
    for (let i = 0; i < 1000; i++) assert.equal(l.take('10.0.0.1').allowed, true);
    assert.equal(l.trackedAddresses, 0);
  });

  it('forgets an address a window after its last join (memory bounded by one window of clients)', () => {
    const { l, clock } = limiter(5, 1000);
    for (let i = 0; i < 500; i++) l.take(`10.1.${i >> 8}.${i & 255}`);
    assert.equal(l.trackedAddresses, 500);
    clock.t += 1000;
    l.take('10.9.9.9');
    assert.equal(l.trackedAddresses, 1, 'the 500 were swept');
  });

  it('refuses bad settings', () => {
    assert.throws(() => new JoinRateLimiter({ maxJoins: -1, windowMs: 1000 }), RangeError);
    assert.throws(() => new JoinRateLimiter({ maxJoins: 1, windowMs: 0 }), RangeError);
  });

  it('property: never more than maxJoins accepted per client in any window, and a refusal only when maxJoins are inside it', () => {
    const events = fc.array(fc.record({ dt: fc.integer({ min: 0, max: 400 }), who: fc.constantFrom('10.0.0.1', '10.0.0.2', '::ffff:10.0.0.1', '2001:db8::1', '2001:db8::2') }), { maxLength: 300 });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 2000 }), events, (maxJoins, windowMs, stream) => {
        const { l, clock } = limiter(maxJoins, windowMs);
        const accepted = new Map<string, number[]>();
        for (const { dt, who } of stream) {
          clock.t += dt;
          const key = addressKey(who);
          const mine = accepted.get(key) ?? [];
          const inWindow = mine.filter((t) => t > clock.t - windowMs);
          const decision = l.take(who);
          if (decision.allowed) {
            assert.ok(inWindow.length < maxJoins, `accepted a join with ${inWindow.length} already in the window`);
            mine.push(clock.t);
            accepted.set(key, mine);
          } else {
            assert.equal(inWindow.length, maxJoins, 'refused below the limit');
            assert.equal(decision.retryAfterMs, inWindow[0]! + windowMs - clock.t);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
