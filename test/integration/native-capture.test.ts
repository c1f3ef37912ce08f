// PacketCapture on a real Ethernet link: two network namespaces made for the
// test, joined by a veth pair. Checks what the standby relies on: frames for
// another host's MAC (a hub or a mirror port) are seen, and the capture
// survives its interface going down and up (ENETDOWN is reported, not fatal).
//
// Under node --test the file creates the namespaces and re-runs itself inside
// namespace A (test/helpers/namespace-scenario.ts), which prints its result.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { HostCommands, thisHost } from '../../mcu/src/core/host-commands.ts';
import { PacketCapture, PacketType, TcpFlag, type TcpSegment } from '../../native/src/index.ts';
import { until } from '../../scripts/common/wait-for.ts';
import { isInnerRun, nativeSkipReason, playScenario, runSelfInNamespace } from '../helpers/namespace-scenario.ts';

const thisFile = fileURLToPath(import.meta.url);
const ADDR_A = '10.231.0.1';
const ADDR_B = '10.231.0.2';
/** An address B sends to through a MAC nobody owns: A sees those frames as "other host". */
const ADDR_ELSEWHERE = '10.231.0.3';
const MAC_ELSEWHERE = '02:00:00:00:e1:5e';

/** Runs a Node one-liner in namespace B (the client side); resolves with its exit code. */
async function inB(nsB: string, script: string, ...args: string[]): Promise<number | null> {
  return (await new HostCommands({ netns: nsB }).run([process.execPath, '-e', script, ...args], { check: false })).code;
}

const SEND_JS = `
const net = require('node:net');
const s = net.connect(Number(process.argv[2]), process.argv[1], () => s.end(process.argv[3]));
s.on('error', () => process.exit(1));
s.on('close', () => process.exit(0));
`;
const SYN_ONLY_JS = `
const net = require('node:net');
const s = net.connect(Number(process.argv[2]), process.argv[1]);
s.on('error', () => {});
setTimeout(() => process.exit(0), 300);
`;

interface InnerResult {
  payloadBefore: string;
  payloadAfter: string;
  otherHostSyns: number;
  otherHostPktTypes: number[];
  errors: string[];
  closedAfterDownUp: boolean;
  stats: { packets: number; drops: number; truncated: number; unparsed: number };
}

async function runInner(nsB: string): Promise<InnerResult> {
  const server = net.createServer((s) => s.resume());
  let capture: PacketCapture | undefined;
  try {
    server.listen(0, '0.0.0.0');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    capture = new PacketCapture({ interface: 'va', port });
    const segments: TcpSegment[] = [];
    const errors: string[] = [];
    capture.on('segments', (batch) => segments.push(...batch));
    capture.on('error', (e) => errors.push(e.message));
    const payloadTo = (dst: string): string =>
      Buffer.concat(segments.filter((s) => s.dstIp === dst && s.dstPort === port).map((s) => s.payload)).toString();

    assert.equal(await inB(nsB, SEND_JS, ADDR_A, String(port), 'hello-veth'), 0);
    await until('the first payload', () => payloadTo(ADDR_A).includes('hello-veth'));
    const payloadBefore = payloadTo(ADDR_A);

    await inB(nsB, SYN_ONLY_JS, ADDR_ELSEWHERE, String(port));
    await until('frames for another host', () => segments.some((s) => s.dstIp === ADDR_ELSEWHERE));
    const elsewhere = segments.filter((s) => s.dstIp === ADDR_ELSEWHERE && s.flags === TcpFlag.SYN);

    await thisHost.run(['ip', 'link', 'set', 'va', 'down']);
    await until('ENETDOWN', () => errors.length > 0);
    await thisHost.run(['ip', 'link', 'set', 'va', 'up']);
    await until('va up', async () => /state UP/.test((await thisHost.run(['ip', 'link', 'show', 'va'])).stdout));
    segments.length = 0;
    // The first connect may race the link coming up: retry a few times.
    for (let i = 0; i < 20 && !payloadTo(ADDR_A).includes('after-up'); i++) {
      await inB(nsB, SEND_JS, ADDR_A, String(port), 'after-up');
      await until('the payload after down/up', () => payloadTo(ADDR_A).includes('after-up'), { timeoutMs: 500 }).catch(() => {});
    }
    return {
      payloadBefore,
      payloadAfter: payloadTo(ADDR_A),
      otherHostSyns: elsewhere.length,
      otherHostPktTypes: [...new Set(elsewhere.map((s) => s.pktType))],
      errors,
      closedAfterDownUp: capture.closed,
      stats: capture.stats(),
    };
  } finally {
    capture?.close();
    server.close();
  }
}

if (isInnerRun()) {
  await playScenario(() => runInner(process.env.TKT_NATIVE_CAPTURE_NS_B ?? ''), 60_000);
} else {
  const skip = await nativeSkipReason(['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'], ['ip']);
  describe('PacketCapture on a veth link (network namespaces)', { skip }, () => {
    it('sees frames for other hosts and survives its interface going down and up', { timeout: 90_000 }, async () => {
      const nsA = `tkt-${process.pid}-capa`;
      const nsB = `tkt-${process.pid}-capb`;
      try {
        await thisHost.run(['ip', 'netns', 'add', nsA]);
        await thisHost.run(['ip', 'netns', 'add', nsB]);
        await thisHost.run(['ip', 'link', 'add', 'va', 'netns', nsA, 'type', 'veth', 'peer', 'name', 'vb', 'netns', nsB]);
        await thisHost.run(['ip', '-n', nsA, 'addr', 'add', `${ADDR_A}/24`, 'dev', 'va']);
        await thisHost.run(['ip', '-n', nsB, 'addr', 'add', `${ADDR_B}/24`, 'dev', 'vb']);
        for (const [ns, dev] of [
          [nsA, 'va'],
          [nsB, 'vb'],
          [nsA, 'lo'],
          [nsB, 'lo'],
        ]) {
          await thisHost.run(['ip', '-n', ns, 'link', 'set', dev, 'up']);
        }
        await thisHost.run(['ip', '-n', nsB, 'neigh', 'add', ADDR_ELSEWHERE, 'lladdr', MAC_ELSEWHERE, 'dev', 'vb', 'nud', 'permanent']);

        const result = await runSelfInNamespace<InnerResult>(thisFile, nsA, 80_000, { TKT_NATIVE_CAPTURE_NS_B: nsB });
        console.log(`capture on veth: ${JSON.stringify(result)}`);

        assert.equal(result.payloadBefore, 'hello-veth');
        assert.ok(result.otherHostSyns >= 1, 'SYNs to another MAC were captured');
        assert.deepEqual(result.otherHostPktTypes, [PacketType.OTHERHOST]);
        assert.ok(result.errors.some((e) => e.includes('ENETDOWN') && e.includes('goes on')), result.errors.join('; '));
        assert.equal(result.closedAfterDownUp, false);
        assert.ok(result.payloadAfter.includes('after-up'), 'capturing resumed after the link came back');
        assert.equal(result.stats.drops, 0);
      } finally {
        await thisHost.run(['ip', 'netns', 'del', nsA], { check: false });
        await thisHost.run(['ip', 'netns', 'del', nsB], { check: false });
      }
    });
  });
}
