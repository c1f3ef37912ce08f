// PacketCapture on a real Ethernet link: two network namespaces made for the
// test, joined by a veth pair. Checks what the standby relies on: frames for
// another host's MAC (a hub or a mirror port) are seen, and the capture
// survives its interface going down and up (ENETDOWN is reported, not fatal).
//
// Under node --test the file creates the namespaces and re-runs itself inside
// namespace A (TKT_NATIVE_CAPTURE_INNER=1), which prints one JSON line.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { nativeAddonAvailable, PacketCapture, PacketType, TcpFlag, type TcpSegment } from '../../native/src/index.ts';

const thisFile = fileURLToPath(import.meta.url);
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const ADDR_A = '10.231.0.1';
const ADDR_B = '10.231.0.2';
/** An address B sends to through a MAC nobody owns: A sees those frames as "other host". */
const ADDR_ELSEWHERE = '10.231.0.3';
const MAC_ELSEWHERE = '02:00:00:00:e1:5e';

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.error?.message}`);
}

/** Runs a Node one-liner in namespace B (the client side). */
function inB(nsB: string, script: string, ...args: string[]): Promise<number | null> {
  const child = spawn('ip', ['netns', 'exec', nsB, process.execPath, '-e', script, ...args], { stdio: 'inherit' });
  return once(child, 'exit').then(([code]) => code as number | null);
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

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
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
    await waitFor(() => payloadTo(ADDR_A).includes('hello-veth'), 'the first payload');
    const payloadBefore = payloadTo(ADDR_A);

    await inB(nsB, SYN_ONLY_JS, ADDR_ELSEWHERE, String(port));
    await waitFor(() => segments.some((s) => s.dstIp === ADDR_ELSEWHERE), 'frames for another host');
    const elsewhere = segments.filter((s) => s.dstIp === ADDR_ELSEWHERE && s.flags === TcpFlag.SYN);

    run('ip', ['link', 'set', 'va', 'down']);
    await waitFor(() => errors.length > 0, 'ENETDOWN');
    run('ip', ['link', 'set', 'va', 'up']);
    await waitFor(() => /state UP/.test(spawnSync('ip', ['link', 'show', 'va'], { encoding: 'utf8' }).stdout), 'va up');
    segments.length = 0;
    // The first connect may race the link coming up: retry a few times.
    for (let i = 0; i < 20 && !payloadTo(ADDR_A).includes('after-up'); i++) {
      await inB(nsB, SEND_JS, ADDR_A, String(port), 'after-up');
      await waitFor(() => payloadTo(ADDR_A).includes('after-up'), 'the payload after down/up', 500).catch(() => {});
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

function skipReason(): string | false {
  if (process.platform !== 'linux') return 'Linux only';
  if (!nativeAddonAvailable()) return 'addon not built (bash scripts/build-native.sh)';
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  const caps = capEff ? BigInt(`0x${capEff}`) : 0n;
  if ((caps & (1n << 12n)) === 0n || (caps & (1n << 13n)) === 0n || (caps & (1n << 21n)) === 0n) {
    return 'needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN for network namespaces)';
  }
  if (spawnSync('ip', ['-V']).error) return 'ip not installed (apt-get install iproute2)';
  return false;
}

if (process.env.TKT_NATIVE_CAPTURE_INNER === '1') {
  setTimeout(() => {
    console.error('inner capture scenario timed out after 60 s');
    process.exit(2);
  }, 60_000).unref();
  const result = await runInner(process.env.TKT_NATIVE_CAPTURE_NS_B ?? '');
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} else {
  describe('PacketCapture on a veth link (network namespaces)', { skip: skipReason() }, () => {
    it('sees frames for other hosts and survives its interface going down and up', { timeout: 90_000 }, async () => {
      const nsA = `tkt-${process.pid}-capa`;
      const nsB = `tkt-${process.pid}-capb`;
      let inner: ChildProcess | undefined;
      try {
        run('ip', ['netns', 'add', nsA]);
        run('ip', ['netns', 'add', nsB]);
        run('ip', ['link', 'add', 'va', 'netns', nsA, 'type', 'veth', 'peer', 'name', 'vb', 'netns', nsB]);
        run('ip', ['-n', nsA, 'addr', 'add', `${ADDR_A}/24`, 'dev', 'va']);
        run('ip', ['-n', nsB, 'addr', 'add', `${ADDR_B}/24`, 'dev', 'vb']);
        for (const [ns, dev] of [
          [nsA, 'va'],
          [nsB, 'vb'],
          [nsA, 'lo'],
          [nsB, 'lo'],
        ]) {
          run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
        }
        run('ip', ['-n', nsB, 'neigh', 'add', ADDR_ELSEWHERE, 'lladdr', MAC_ELSEWHERE, 'dev', 'vb', 'nud', 'permanent']);

        const env: NodeJS.ProcessEnv = { ...process.env, TKT_NATIVE_CAPTURE_INNER: '1', TKT_NATIVE_CAPTURE_NS_B: nsB };
        delete env.NODE_TEST_CONTEXT;
        inner = spawn('ip', ['netns', 'exec', nsA, process.execPath, '--import', 'tsx', thisFile], {
          cwd: repoRoot,
          env,
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        inner.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        const [code] = (await once(inner, 'exit')) as [number | null];
        assert.equal(code, 0, 'inner scenario exited cleanly');
        const result = JSON.parse(out.trim().split('\n').pop() ?? '{}') as InnerResult;
        console.log(`capture on veth: ${JSON.stringify(result)}`);

        assert.equal(result.payloadBefore, 'hello-veth');
        assert.ok(result.otherHostSyns >= 1, 'SYNs to another MAC were captured');
        assert.deepEqual(result.otherHostPktTypes, [PacketType.OTHERHOST]);
        assert.ok(result.errors.some((e) => e.includes('ENETDOWN') && e.includes('goes on')), result.errors.join('; '));
        assert.equal(result.closedAfterDownUp, false);
        assert.ok(result.payloadAfter.includes('after-up'), 'capturing resumed after the link came back');
        assert.equal(result.stats.drops, 0);
      } finally {
        if (inner && inner.exitCode === null) inner.kill('SIGKILL');
        spawnSync('ip', ['netns', 'del', nsA]);
        spawnSync('ip', ['netns', 'del', nsB]);
      }
    });
  });
}
