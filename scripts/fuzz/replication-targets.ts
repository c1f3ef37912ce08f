/**
 * The replication fuzz targets (replication-bed.ts):
 * - `replication-standby`: a malformed frame injected into the primary -> standby stream. The
 *   standby must refuse it with the error its class names (REPLICATION_AUTH_FAILED,
 *   REPLICATION_MALFORMED, REPLICATION_STALE_EPOCH) and log it, or, for a change that does not
 *   fit its copy, resync; then sync again, and hold the primary's state at the primary's epoch.
 * - `replication-primary`: a peer connecting to the primary's replication port and sending
 *   malformed frames. The primary must refuse the connection and log it, the real standby must
 *   not notice, and the replicated state must not change.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import fc from 'fast-check';
import type { SessionSnapshot } from '../../mcu/src/conference/session-state.ts';
import { canonicalSnapshot } from '../../mcu/src/replication/checkpoint-store.ts';
import type { FuzzTarget } from './fuzz-run.ts';
import { FUZZ_PRIMARY_EPOCH, FUZZ_REPLICATION_SECRET, type ReplicationFuzzBed } from './replication-bed.ts';
import { buildFrame, frameRecipe, type FrameRecipe } from './replication-frames.ts';
import { RawReplicationPeer } from '../common/raw-replication-peer.ts';

const WAIT_MS = 10_000;

export interface StandbyStreamCase {
  recipe: FrameRecipe;
  /** Changes made on the primary after the resync, before the states are compared. */
  churn: number;
}

export function standbyStreamTarget(bed: ReplicationFuzzBed): FuzzTarget<StandbyStreamCase> {
  return {
    name: 'replication-standby',
    arbitrary: fc.record({ recipe: frameRecipe(), churn: fc.nat({ max: 3 }) }),
    before: () => bed.ensure(),
    afterFailure: () => bed.markDirty(),
    async run({ recipe, churn }) {
      const at = bed.proxy.stream;
      assert.ok(at, 'no primary -> standby stream to inject into');
      const standby = bed.standby;
      const mark = standby.mark();
      const lineMark = standby.lineMark();
      const injected = bed.proxy.inject((sealing) => buildFrame(recipe, { epoch: at.epoch, lastSeq: at.lastSeq }, sealing));
      assert.ok(injected, 'the proxy has no standby connection');
      const { expect } = injected;
      let outcome: string;
      if (expect.includes('resync')) {
        await standby.waitFor((m) => m.type === 'state' && m.from === 'synced', mark, WAIT_MS, 'a resync');
        await standby.waitLine((l) => l.includes('checkpoint diverged'), lineMark, WAIT_MS, 'the log line of the divergence');
        outcome = 'resync';
      } else {
        const rejected = await standby.waitFor((m) => m.type === 'rejected', mark, WAIT_MS, `a rejection (${expect.join(' or ')})`);
        const code = String(rejected.code);
        assert.ok((expect as string[]).includes(code), `${recipe.class}: refused with ${code} (${String(rejected.message)}), expected ${expect.join(' or ')}`);
        await standby.waitLine((l) => l.includes(code) && l.includes('refused'), lineMark, WAIT_MS, `the log line of the ${code} refusal`);
        outcome = code;
      }
      await standby.waitFor((m) => m.type === 'synced', mark, WAIT_MS, 'the standby synced again');
      await bed.checkCheckpoint(churn);
      return `${recipe.class}: ${outcome}`;
    },
  };
}

export interface PrimaryListenerCase {
  recipes: FrameRecipe[];
  /** Bytes sent before the frames: none, noise, or another protocol's greeting. */
  preamble: Uint8Array;
}

const preamble = (): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant(new Uint8Array(0)) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }) },
    { weight: 1, arbitrary: fc.constantFrom('GET / HTTP/1.1\r\nHost: primary\r\n\r\n', 'SSH-2.0-OpenSSH_9.2\r\n', '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003').map((s) => Buffer.from(s, 'latin1')) },
  );

export function primaryListenerTarget(bed: ReplicationFuzzBed): FuzzTarget<PrimaryListenerCase> {
  // The state the primary holds (it changes only by its own commands, none here) and the standby's events so far.
  let baseline: { state: SessionSnapshot; standbyMark: number; standbyPid: number } | null = null;
  let cases = 0;
  return {
    name: 'replication-primary',
    arbitrary: fc.record({ recipes: fc.array(frameRecipe(), { minLength: 1, maxLength: 3 }), preamble: preamble() }),
    afterFailure: () => bed.markDirty(),
    async before() {
      await bed.ensure();
      if (!baseline || baseline.standbyPid !== bed.standby.fixture.pid) {
        const { state } = await bed.primary.ask({ cmd: 'snapshot' }, 'snapshot');
        baseline = { state: state as SessionSnapshot, standbyMark: bed.standby.mark(), standbyPid: bed.standby.fixture.pid };
      }
    },
    async run({ recipes, preamble }) {
      const primary = bed.primary;
      const mark = primary.mark();
      const lineMark = primary.lineMark();
      const socket = connect({ host: '127.0.0.1', port: bed.primaryPort });
      socket.on('error', () => {});
      await once(socket, 'connect');
      const remote = `127.0.0.1:${socket.localPort}`;
      // Not once(): it rejects on the 'error' (a reset) that may come while the handshake is awaited.
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      // The link handshake first (after the preamble, which the primary refuses at once), then
      // the frames sealed with this connection's key. A fresh connection: nothing received yet,
      // the first sequenced frame must be seq 1.
      const peer = await RawReplicationPeer.start(socket, FUZZ_REPLICATION_SECRET, { preamble: Buffer.from(preamble) }).catch(() => null);
      const frames = peer ? recipes.map((r) => buildFrame(r, { epoch: FUZZ_PRIMARY_EPOCH, lastSeq: 0 }, peer)) : [];
      socket.resume();
      socket.end(Buffer.concat(frames.map((f) => f.bytes)));
      const refused = await primary.waitFor((m) => m.type === 'standby-refused' && m.remote === remote, mark, WAIT_MS, `the refusal of ${remote}`);
      await closed;
      const code = refused.code === null ? null : String(refused.code);
      if (preamble.length === 0 && frames[0]?.expect.length === 1 && frames[0].expect[0] === 'REPLICATION_AUTH_FAILED') {
        assert.equal(code, 'REPLICATION_AUTH_FAILED', `a bad MAC refused as ${code}: ${String(refused.reason)}`);
      }
      await primary.waitLine((l) => l.includes(remote) && l.includes('refused'), lineMark, WAIT_MS, `the log line of the refusal of ${remote}`);

      // The real standby never noticed, and the state is what it was.
      const standbyNews = bed.standby.messages.slice(baseline!.standbyMark).filter((m) => m.type !== 'checkpoint' && m.type !== 'seq-reached');
      assert.deepEqual(standbyNews, [], 'the real standby was disturbed');
      if (++cases % 10 === 0) {
        const { state } = await primary.ask({ cmd: 'snapshot' }, 'snapshot');
        assert.deepEqual(canonicalSnapshot(state as SessionSnapshot), canonicalSnapshot(baseline!.state), "the primary's state changed");
        await bed.checkCheckpoint();
      }
      return code ?? 'refused (protocol step)';
    },
  };
}
