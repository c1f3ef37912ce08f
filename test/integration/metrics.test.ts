/**
 * /metrics of real MCU processes (a supervised primary and standby): every metric has the
 * right type (gauges for what is, counters for running totals), its value matches the live
 * state at the moment of the scrape, counters never go back when a room closes, and a
 * promoted standby counts its failover.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Supervisor } from '../../standby/src/supervisor/supervisor.ts';
import { eventually } from '../../scripts/common/browser.ts';
import { freePort } from '../../scripts/common/ports.ts';
import { TestSignalingClient } from '../helpers/signaling-client.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';

interface Scrape {
  types: Map<string, string>;
  /** `name` or `name{labels}` -> value. */
  samples: Map<string, number>;
}

const GAUGES = [
  'mcu_rooms',
  'mcu_participants',
  'mcu_epoch',
  'mcu_protected',
  'mcu_failover_detection_ms',
  'mcu_failover_promotion_ms',
  'mcu_replication_lag_frames',
  'mcu_replication_ack_rtt_ms',
];
const COUNTERS = [
  'mcu_failovers_total',
  'mcu_signaling_errors_total',
  'mcu_mixer_input_underruns_total',
  'mcu_mixer_video_frames_total',
  'mcu_replication_bytes_sent_total',
];

async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const sample = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (sample) samples.set(sample[1]!, Number(sample[2]));
  }
  return { types, samples };
}

function value(s: Scrape, key: string): number {
  const v = s.samples.get(key);
  assert.ok(v !== undefined, `${key} is not in /metrics`);
  return v;
}

function assertTypes(s: Scrape): void {
  for (const name of GAUGES) assert.equal(s.types.get(name), 'gauge', name);
  for (const name of COUNTERS) assert.equal(s.types.get(name), 'counter', name);
  // The convention Prometheus relies on: a running total is a counter, named *_total.
  for (const [name, type] of s.types) {
    if (!name.startsWith('mcu_')) continue;
    assert.equal(type === 'counter', name.endsWith('_total'), `${name} is a ${type}`);
  }
}

const cleanups = cleanupsAfterEach();

async function startPair(): Promise<{ supervisor: Supervisor; url: string; adminUrl: string }> {
  const port = await freePort();
  const replicationPort = await freePort();
  const supervisor = new Supervisor({ port, replicationPort, adminPort: await freePort(), host: '127.0.0.1' });
  cleanups.push(() => supervisor.close());
  await supervisor.start();
  const url = `http://127.0.0.1:${port}`;
  const adminUrl = supervisor.adminUrl;
  const st = await eventually(() => status(adminUrl), (s) => s.protected, 10000);
  assert.equal(st.protected, true, 'the standby synced');
  return { supervisor, url, adminUrl };
}

async function status(url: string): Promise<{ role: string; epoch: number; protected: boolean }> {
  return (await (await fetch(`${url}/status`)).json()) as { role: string; epoch: number; protected: boolean };
}

async function client(url: string): Promise<TestSignalingClient> {
  const c = new TestSignalingClient(url, { reconnection: true });
  cleanups.push(() => c.close());
  await c.connected();
  return c;
}

describe('/metrics (real MCU processes)', () => {
  it('gauges read the live state, counters the running totals, which survive a room closing', async () => {
    const { url, adminUrl } = await startPair();
    const ada = await client(url);
    const bob = await client(url);
    assert.equal((await ada.request('join', { room: 'm1', name: 'Ada' })).ok, true);
    assert.equal((await bob.request('join', { room: 'm1', name: 'Bob' })).ok, true);
    const stranger = await client(url);
    assert.equal((await stranger.request('teleport', {})).error?.code, 'INVALID_MESSAGE');
    assert.equal((await stranger.request('leave')).error?.code, 'NOT_JOINED');
    assert.equal((await stranger.request('mute', { kind: 'audio', muted: true })).error?.code, 'NOT_JOINED');

    // The room's mixer runs from the first join: without media every mix misses its input.
    const inCall = await eventually(
      () => scrape(adminUrl),
      (s) => (s.samples.get('mcu_mixer_video_frames_total') ?? 0) > 0 && (s.samples.get('mcu_mixer_input_underruns_total') ?? 0) > 0,
      10000,
    );
    assertTypes(inCall);
    assert.equal(value(inCall, 'mcu_rooms'), 1);
    assert.equal(value(inCall, 'mcu_participants'), 2);
    assert.equal(value(inCall, 'mcu_epoch'), 1);
    assert.equal(value(inCall, 'mcu_protected'), 1);
    assert.equal(value(inCall, 'mcu_failovers_total'), 0);
    assert.equal(value(inCall, 'mcu_signaling_errors_total{code="INVALID_MESSAGE"}'), 1);
    assert.equal(value(inCall, 'mcu_signaling_errors_total{code="NOT_JOINED"}'), 2);
    assert.ok(value(inCall, 'mcu_replication_bytes_sent_total') > 0, 'the snapshot and the joins went to the standby');
    assert.ok(value(inCall, 'mcu_replication_lag_frames') >= 0);
    assert.ok(value(inCall, 'mcu_mixer_video_frames_total') > 0);

    assert.equal((await ada.request('leave')).ok, true);
    assert.equal((await bob.request('leave')).ok, true);
    const after = await scrape(adminUrl);
    assertTypes(after);
    assert.equal(value(after, 'mcu_rooms'), 0, 'the room closed with its last participant');
    assert.equal(value(after, 'mcu_participants'), 0);
    for (const name of ['mcu_mixer_video_frames_total', 'mcu_mixer_input_underruns_total', 'mcu_replication_bytes_sent_total']) {
      assert.ok(value(after, name) >= value(inCall, name), `${name} went from ${value(inCall, name)} back to ${value(after, name)}`);
    }
    assert.ok(value(after, 'mcu_replication_bytes_sent_total') > value(inCall, 'mcu_replication_bytes_sent_total'), 'the leaves were replicated');
    assert.equal(value(after, 'mcu_signaling_errors_total{code="NOT_JOINED"}'), 2);
  });

  it('a promoted standby counts its failover and how long detection and promotion took', async () => {
    const { supervisor, adminUrl } = await startPair();
    const before = await scrape(adminUrl);
    assert.equal(value(before, 'mcu_failovers_total'), 0);
    assert.equal(value(before, 'mcu_failover_detection_ms'), 0, 'no failover yet');
    const promoted = new Promise<void>((resolve) => supervisor.once('promoted', () => resolve()));
    await supervisor.primary!.process.kill('SIGKILL');
    await promoted;
    const st = await eventually(() => status(adminUrl).catch(() => null), (s) => s?.role === 'primary' && s.epoch === 2, 10000);
    assert.ok(st, 'the promoted standby serves');
    const s = await scrape(adminUrl);
    assertTypes(s);
    assert.equal(value(s, 'mcu_failovers_total'), 1);
    assert.equal(value(s, 'mcu_epoch'), 2);
    assert.ok(value(s, 'mcu_failover_detection_ms') > 0, 'from the last heartbeat heard to the verdict');
    assert.ok(value(s, 'mcu_failover_promotion_ms') >= 0);
    assert.equal(value(s, 'mcu_rooms'), 0);
  });
});
