/**
 * What the heartbeat fuzz targets run against: a real primary process beating from its
 * HeartbeatBeacon thread, a real standby-side HeartbeatMonitor process following it through a
 * UDP relay here (so that datagrams can reach the monitor from the address it is connected to,
 * as a spoofing attacker's would), and a socket for datagrams straight at the beacon.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { FixtureProcess } from '../common/child-process.ts';
import { FixtureLog } from './fixture-log.ts';

export const FUZZ_HEARTBEAT_SECRET = 'fuzz-heartbeat-secret-93b1d7e2';
/** The primary's epoch: high enough for stale beats below it. */
export const FUZZ_HEARTBEAT_EPOCH = 20;

/**
 * Relays the monitor's subscriptions to the beacon and the beacon's beats to the monitor, on one
 * socket: to the monitor, everything it sends comes from the address it follows.
 */
class HeartbeatRelay {
  readonly socket = dgram.createSocket('udp4');
  #monitor: { address: string; port: number } | null = null;
  #closed = false;

  constructor(readonly beaconPort: number) {
    this.socket.on('message', (buf, from) => {
      if (from.port === this.beaconPort) {
        if (this.#monitor) this.socket.send(buf, this.#monitor.port, this.#monitor.address);
        return;
      }
      this.#monitor = { address: from.address, port: from.port };
      this.socket.send(buf, this.beaconPort, '127.0.0.1');
    });
    this.socket.on('error', () => {});
  }

  async bind(): Promise<number> {
    this.socket.bind(0, '127.0.0.1');
    await once(this.socket, 'listening');
    return this.socket.address().port;
  }

  get monitorKnown(): boolean {
    return this.#monitor !== null;
  }

  /** Sends `bytes` to the monitor as if from the beacon. */
  toMonitor(bytes: Uint8Array): void {
    if (!this.#monitor) throw new Error('the monitor has not subscribed yet');
    this.socket.send(bytes, this.#monitor.port, this.#monitor.address);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.close();
  }
}

export class HeartbeatFuzzBed {
  #primary: FixtureLog | null = null;
  #monitor: FixtureLog | null = null;
  #relay: HeartbeatRelay | null = null;
  #attacker: dgram.Socket | null = null;
  #beaconPort = 0;
  #dirty = false;
  /** Times the processes were replaced because one had died (0 unless a case crashed one). */
  restarts = 0;

  get primary(): FixtureLog {
    return this.#need(this.#primary);
  }
  get monitor(): FixtureLog {
    return this.#need(this.#monitor);
  }

  #need<T>(v: T | null): T {
    if (v === null) throw new Error('HeartbeatFuzzBed: start() first');
    return v;
  }

  /** After a failed case: the next ensure() starts everything afresh. */
  markDirty(): void {
    this.#dirty = true;
  }

  async start(): Promise<void> {
    const env = { LOG_LEVEL: 'warn', NODE_ENV: 'test' };
    const primary = new FixtureLog(
      new FixtureProcess('scripts/fixtures/replication-primary.ts', { ...env, REPL_SECRET: FUZZ_HEARTBEAT_SECRET, REPL_EPOCH: String(FUZZ_HEARTBEAT_EPOCH), REPL_BEACON: '1' }),
    );
    this.#primary = primary;
    this.#beaconPort = Number((await primary.waitFor((m) => m.type === 'listening', 0, 20_000, '"listening"')).port);
    this.#relay = new HeartbeatRelay(this.#beaconPort);
    const relayPort = await this.#relay.bind();
    // A generous window: the relay runs on this loaded machine's event loop; the point is that
    // no datagram causes a verdict, not how fast one would come.
    const monitor = new FixtureLog(
      new FixtureProcess('scripts/fixtures/heartbeat-monitor.ts', {
        ...env,
        HB_PORT: String(relayPort),
        HB_SECRET: FUZZ_HEARTBEAT_SECRET,
        HB_MIN_EPOCH: String(FUZZ_HEARTBEAT_EPOCH),
        HB_MISSED: '20',
        HB_CONFIRM_MS: '1000',
      }),
    );
    this.#monitor = monitor;
    await monitor.waitFor((m) => m.type === 'first-beat', 0, 20_000, 'the first beat');
    this.#attacker = dgram.createSocket('udp4');
    this.#attacker.on('error', () => {});
    this.#attacker.bind(0, '127.0.0.1');
    await once(this.#attacker, 'listening');
  }

  /** Before a case: both processes alive and the monitor hearing the beacon (anything dead, counted, or left by a failed case is replaced). */
  async ensure(): Promise<void> {
    const running = this.#primary?.fixture.running === true && this.#monitor?.fixture.running === true;
    if (running && !this.#dirty) return;
    if (this.#primary && !running) this.restarts++;
    this.#dirty = false;
    await this.close();
    await this.start();
  }

  /** Datagrams to the monitor, from the address it follows (the relay's). */
  toMonitor(datagrams: Uint8Array[]): void {
    for (const d of datagrams) this.#need(this.#relay).toMonitor(d);
  }

  /** Datagrams straight at the beacon's port; returns the address:port they come from. */
  toBeacon(datagrams: Uint8Array[]): string {
    const socket = this.#need(this.#attacker);
    for (const d of datagrams) socket.send(d, this.#beaconPort, '127.0.0.1');
    const a = socket.address();
    return `${a.address}:${a.port}`;
  }

  async close(): Promise<void> {
    const monitor = this.#monitor;
    const primary = this.#primary;
    this.#monitor = this.#primary = null;
    this.#relay?.close();
    this.#relay = null;
    this.#attacker?.close();
    this.#attacker = null;
    await monitor?.fixture.close();
    await primary?.fixture.close();
  }
}
