import { EventEmitter } from 'node:events';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { McuConfig } from '../../mcu/src/core/config.ts';
import { ConfigError } from '../../mcu/src/core/errors.ts';
import { sendJson } from '../../mcu/src/http/http-routes.ts';
import { createLogger, setLogRole } from '../../mcu/src/core/logger.ts';
import { LoopStallRecorder } from '../../mcu/src/core/loop-stalls.ts';
import { Mcu } from '../../mcu/src/mcu.ts';
import { Room } from '../../mcu/src/conference/room.ts';
import { SessionState } from '../../mcu/src/conference/session-state.ts';
import { CheckpointStore } from '../../mcu/src/replication/checkpoint-store.ts';
import { HeartbeatMonitor, type HeartbeatMonitorOptions, type HeartbeatVerdict } from '../../mcu/src/detection/heartbeat-monitor.ts';
import { ReplicationClient } from '../../mcu/src/replication/replication-client.ts';
import { SparePathManager } from '../../mcu/src/spare/spare-paths.ts';
import { TakeoverEngine, type TakeoverEngineOptions, type TakeoverReport } from '../../mcu/src/takeover/standby.ts';
import { raiseVip } from '../../mcu/src/takeover/fencing/vip.ts';
import { FailoverStep } from '../../mcu/src/wire/failover-steps.ts';

/** Why the standby judged the primary dead. */
export type DeathReason = HeartbeatVerdict['reason'];

/** The life of a hot standby. `active`: it promoted itself and now runs the primary MCU. */
export type StandbyState = 'syncing' | 'ready' | 'promoting' | 'active' | 'stopped' | 'failed';

export interface PromotionTimeline {
  /** Epoch-ms timestamps of each failover step on this host. */
  lastHeartbeatAt: number | null;
  detectedAt: number;
  reason: DeathReason;
  promotionStartedAt: number;
  restoredAt: number;
  servingAt: number;
  previousEpoch: number;
  epoch: number;
  participantsRestored: number;
  /** Participants whose connected warm spare path became their media session (mixed onto at once). */
  participantsOnSpares: number;
  roomsRestored: number;
  /** Connection-level takeover (takeover mode only): connections rebuilt and re-attached, and the others. */
  takeover?: TakeoverReport;
}

export type StandbyEvents = {
  state: [to: StandbyState, from: StandbyState];
  promoted: [timeline: PromotionTimeline, mcu: Mcu];
};

export interface StandbyOptions {
  /** The MCU configuration it will serve with once promoted (same service port as the primary). */
  config: McuConfig;
  /** The primary's replication address. */
  primary: { host: string; port: number };
  /** Port of the standby's own /status endpoint while it is not serving (0: any free port). */
  statusPort: number;
  statusHost?: string;
  /**
   * Connection-level takeover (used when config.takeover is on): where to capture and how to
   * raise the VIP. Default: from MCU_CAPTURE_INTERFACE, MCU_VIP_INTERFACE, MCU_VIP_ROUTE.
   */
  takeover?: Partial<Pick<TakeoverEngineOptions, 'captureInterface' | 'vipInterface' | 'vipRoute' | 'closeMark'>>;
}

/**
 * A hot standby: keeps a checkpoint of the primary's session state, watches its
 * heartbeats, and when the primary dies promotes itself into the primary MCU built
 * from that checkpoint, on the same service address and port, with a higher epoch.
 */
export class Standby extends EventEmitter<StandbyEvents> {
  #client: ReplicationClient;
  readonly store = new CheckpointStore();
  #monitor: HeartbeatMonitor | null = null;
  #probeTimer: NodeJS.Timeout | null = null;
  readonly #opts: StandbyOptionsResolved;
  /** The service address's interface and route, raised at a promotion (MCU_VIP_INTERFACE, MCU_VIP_ROUTE). */
  readonly #vip: { ifname: string | null; route: string | null };
  /** Host probe settings for the heartbeat monitor (MCU_HOST_PROBE_MS, MCU_HOST_PROBE_PORT). */
  readonly #hostProbe: Pick<HeartbeatMonitorOptions, 'hostProbeTimeoutMs' | 'hostProbePort'>;
  readonly #log = createLogger('standby');
  readonly #statusServer: HttpServer;
  readonly #startedAt = Date.now();
  #state: StandbyState = 'syncing';
  #mcu: Mcu | null = null;
  #timeline: PromotionTimeline | null = null;
  /** Connection-level takeover (config.takeover), null in reconnect mode. */
  readonly takeover: TakeoverEngine | null;
  /** Warm spare paths with every participant's page (config.sparePaths), handed to the media sessions at promotion. */
  readonly spares: SparePathManager;

  constructor(opts: StandbyOptions) {
    super();
    const repl = opts.config.replication;
    if (!repl) throw new ConfigError('a standby needs MCU_REPLICATION_SECRET (the same as the primary\'s)');
    this.#opts = { ...opts, repl };
    const env = process.env;
    this.#vip = { ifname: opts.takeover?.vipInterface ?? (env.MCU_VIP_INTERFACE || null), route: opts.takeover?.vipRoute ?? (env.MCU_VIP_ROUTE || null) };
    this.#hostProbe = {
      ...(env.MCU_HOST_PROBE_MS ? { hostProbeTimeoutMs: Number(env.MCU_HOST_PROBE_MS) } : {}),
      ...(env.MCU_HOST_PROBE_PORT ? { hostProbePort: Number(env.MCU_HOST_PROBE_PORT) } : {}),
    };
    this.takeover = opts.config.takeover
      ? new TakeoverEngine({
          serviceAddress: opts.config.host,
          servicePort: opts.config.port,
          captureInterface: opts.takeover?.captureInterface ?? (env.MCU_CAPTURE_INTERFACE || null),
          vipInterface: this.#vip.ifname,
          vipRoute: this.#vip.route,
          ...(opts.takeover?.closeMark !== undefined ? { closeMark: opts.takeover.closeMark } : {}),
        })
      : null;
    this.spares = new SparePathManager({
      enabled: opts.config.sparePaths !== false,
      iceAddresses: opts.config.spareIceAddresses ?? [],
      iceGatherTimeoutMs: opts.config.iceGatherTimeoutMs,
    });
    this.#client = this.#createClient();
    this.#statusServer = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (path === '/status') sendJson(res, 200, this.status());
      else sendJson(res, 404, { error: `nothing at ${path}` });
    });
  }

  get client(): ReplicationClient {
    return this.#client;
  }

  /**
   * The replication stream. Its own failure detector is switched off: the verdict comes
   * from the real-time heartbeat thread (HeartbeatMonitor), which a loaded main thread
   * cannot fool. The end of the stream only makes us ask that thread at once.
   */
  #createClient(): ReplicationClient {
    const { repl, primary } = this.#opts;
    const client = new ReplicationClient({
      host: primary.host,
      port: primary.port,
      secret: repl.secret,
      store: this.store,
      heartbeatIntervalMs: repl.heartbeatMs,
      detector: { intervalMs: repl.heartbeatMs, missedBeats: 1e8, closeGraceMs: 1e9 },
    });
    this.takeover?.follow(client);
    this.spares.follow(client);
    client.on('synced', (info) => {
      this.#log.info('checkpoint synced', { seq: info.seq, epoch: info.epoch, primary: info.primaryId });
      this.#startMonitor(info.epoch);
      this.#maybeReady();
    });
    client.on('rejected', (err) => this.#log.warn('replication frame rejected', { code: err.code, reason: err.message }));
    client.on('lost', (info) => {
      if (info.deliberate) {
        this.#log.info('primary stopped on purpose: no failover', { reason: info.reason });
        void this.#monitor?.close();
        this.#monitor = null;
        return;
      }
      this.#log.warn('failover step: replication stream lost, probing the primary', { failover: FailoverStep.Suspected, reason: info.reason });
      this.#monitor?.probe();
      // Still beating after a while: the primary lives and only the stream broke. Reconnect.
      if (this.#probeTimer) clearTimeout(this.#probeTimer);
      this.#probeTimer = setTimeout(() => {
        this.#probeTimer = null;
        if (this.#state !== 'ready' && this.#state !== 'syncing') return;
        if (this.#monitor?.verdict) return;
        this.#log.warn('primary still beating after losing the stream: reconnecting, no failover');
        this.#client.close('reconnecting');
        this.#client = this.#createClient();
        this.#client.start();
      }, 500);
    });
    return client;
  }

  #startMonitor(epoch: number): void {
    if (this.#monitor) return;
    const { repl, primary } = this.#opts;
    const monitor = new HeartbeatMonitor({
      host: primary.host,
      port: primary.port,
      secret: repl.secret,
      intervalMs: repl.heartbeatMs,
      missedBeats: repl.missedHeartbeats,
      minEpoch: epoch,
      ...this.#hostProbe,
    });
    monitor.on('dead', (verdict) => void this.#promote(verdict));
    monitor.on('first-beat', () => this.#maybeReady());
    monitor.start();
    this.#monitor = monitor;
  }

  /** Ready = a checkpoint and the heartbeat thread hearing the primary: only then can a death be judged. */
  #maybeReady(): void {
    if (this.#state === 'syncing' && this.#client.state === 'synced' && this.#monitor?.lastHeartbeatAt != null) {
      this.#setState('ready');
      setImmediate(() => this.#warmUp());
    }
  }

  #warmedUp = false;

  /**
   * The first room of a process takes tens of ms to build (cold code, the first wrtc audio and
   * video sources) and a promotion builds one before it mixes onto the spare paths: build one
   * and drop it now, off the failover's critical path. Its own state, nothing replicated.
   */
  #warmUp(): void {
    if (this.#warmedUp || this.#state !== 'ready') return;
    this.#warmedUp = true;
    const started = performance.now();
    const room = new Room('warm-up', new SessionState(), this.#opts.config);
    try {
      room.add('warm-up', { audio: false, video: false });
    } finally {
      room.close('shutdown');
    }
    this.#log.info('warmed up for a promotion', { tookMs: Math.round((performance.now() - started) * 10) / 10 });
  }

  get state(): StandbyState {
    return this.#state;
  }

  get mcu(): Mcu | null {
    return this.#mcu;
  }

  get timeline(): PromotionTimeline | null {
    return this.#timeline;
  }

  get statusPort(): number {
    return (this.#statusServer.address() as AddressInfo | null)?.port ?? 0;
  }

  #setState(state: StandbyState): void {
    if (state === this.#state) return;
    const from = this.#state;
    this.#log.info('standby state', { from, to: state });
    this.#state = state;
    this.emit('state', state, from);
  }

  async start(): Promise<void> {
    setLogRole('standby');
    await new Promise<void>((resolve, reject) => {
      this.#statusServer.once('error', reject);
      this.#statusServer.listen(this.#opts.statusPort, this.#opts.statusHost ?? '127.0.0.1', () => resolve());
    });
    this.takeover?.start();
    this.#client.start();
  }

  status(): Record<string, unknown> {
    const store = this.store;
    return {
      role: this.#state === 'active' ? 'primary' : 'standby',
      standbyState: this.#state,
      pid: process.pid,
      epoch: store.epoch,
      uptimeSeconds: Math.round((Date.now() - this.#startedAt) / 100) / 10,
      primary: this.client.primary,
      replication: { state: this.#client.state, seq: store.seq },
      heartbeats: { received: this.#monitor?.beats ?? 0, lastAt: this.#monitor?.lastHeartbeatAt ?? null, nearMisses: this.#monitor?.nearMisses ?? null },
      checkpoint: {
        rooms: store.state.rooms().length,
        participants: store.state.participantCount,
      },
      servicePort: this.#opts.config.port,
      mode: this.takeover ? 'takeover' : 'reconnect',
      spares: { enabled: this.#opts.config.sparePaths !== false, connected: this.spares.connectedCount, paths: this.spares.status() },
      takeover: this.takeover?.stats() ?? null,
      promotion: this.#timeline,
      mcu: this.#mcu?.status() ?? null,
    };
  }

  /** The primary is dead: become the primary from the checkpoint. */
  async #promote(death: HeartbeatVerdict): Promise<void> {
    if (this.#state !== 'ready' && this.#state !== 'syncing') return;
    const store = this.store;
    if (!store.hasSnapshot) {
      this.#log.error('primary died before this standby had a checkpoint: cannot take over');
      this.#setState('failed');
      return;
    }
    const promotionStartedAt = Date.now();
    const loopStalls = new LoopStallRecorder().start();
    this.#setState('promoting');
    const log = this.#log;
    log.info('failover step: primary confirmed dead', {
      failover: FailoverStep.ConfirmedDead,
      reason: death.reason,
      detectedAt: new Date(death.detectedAt).toISOString(),
      lastHeartbeatAt: death.lastHeartbeatAt === null ? null : new Date(death.lastHeartbeatAt).toISOString(),
      sinceLastHeartbeatMs: death.lastHeartbeatAt === null ? null : Math.round(death.detectedAt - death.lastHeartbeatAt),
    });
    if (this.#probeTimer) clearTimeout(this.#probeTimer);
    // Before we stop following: a primary that was only frozen or cut off reads this and fences itself.
    this.#client.supersede(store.epoch + 1);
    this.#client.close('promoting');
    void this.#monitor?.close();
    this.#monitor = null;
    const previousEpoch = store.epoch;
    const epoch = previousEpoch + 1;
    const t0 = performance.now();
    const state = SessionState.fromSnapshot(store.snapshot());
    // The mix goes onto the adopted spare paths. Reconnect mode: once the service port is ours (on
    // one host that proves the old primary dead, so a standby that judged wrongly never sends on
    // them). Takeover mode: at once, as the old primary was told it is superseded; a page leaves
    // its primary path only once that fell silent (or when told), so media on a spare path of a
    // wrongly suspected primary's page is never played.
    const spareStarts: Array<Promise<void>> = [];
    const startSpares = (): void => {
      for (const { participantId, pathId, started } of mcu.conference.startSpares()) {
        spareStarts.push(started.catch(() => undefined));
        void started.then(
          () =>
            log.info('failover step: mixing onto the spare path', {
              failover: FailoverStep.MixingOnSpare,
              participant: participantId,
              pathId,
              sinceDetectedMs: Math.round(Date.now() - death.detectedAt),
            }),
          () => undefined,
        );
      }
    };
    const t1 = performance.now();
    const mcu = new Mcu({ config: this.#opts.config, epoch, state, bindRetryMs: this.#opts.repl.bindRetryMs, ...(this.takeover ? {} : { onServing: startSpares }) });
    this.#mcu = mcu;
    const t2 = performance.now();
    // Participants with a connected spare path adopt it; the mix goes on it (see startSpares above).
    // Takeover mode: the restart offers wait for the VIP (see Conference.prepareRestarts).
    const restored = mcu.conference.restore({ prepareMedia: this.takeover === null, spares: (participantId) => this.spares.handOff(participantId) });
    this.spares.close();
    if (this.takeover) startSpares();
    const participantsRestored = restored.participants;
    const restoredAt = Date.now();
    log.info('failover step: session restored from checkpoint', {
      failover: FailoverStep.Restored,
      epoch,
      rooms: state.rooms().length,
      participants: participantsRestored,
      onSpares: restored.onSpares,
      // Where promotion time goes before the port is tried (ms): checkpoint copy, MCU objects, rooms.
      tookMs: { state: round1(t1 - t0), mcu: round1(t2 - t1), rooms: round1(performance.now() - t2) },
    });
    mcu.conference.on('media-restarted', (participant, tookMs) =>
      log.info('failover step: media restarted', { failover: FailoverStep.MediaRestarted, participant, sincePreparedMs: tookMs }),
    );
    mcu.conference.once('participant-resumed', () =>
      log.info('failover step: first client resumed', { failover: FailoverStep.FirstClient, sinceDetectedMs: Math.round(Date.now() - death.detectedAt) }),
    );
    try {
      mcu.noteFailover({
        previousEpoch,
        lastHeartbeatAt: death.lastHeartbeatAt,
        detectedAt: death.detectedAt,
        reason: death.reason,
        participantsRestored,
      });
      // Takeover mode: the VIP comes here and every connection is rebuilt before the MCU listens
      // beside them; sessions are re-attached once it serves (its signaling refuses requests before).
      if (this.takeover) {
        // Media first: the mix on the spare paths gets its first frames out (the pages switch on
        // them) before the signaling takeover below keeps this thread busy for tens of ms.
        if (spareStarts.length > 0) {
          await Promise.all(spareStarts);
          await new Promise((resolve) => setTimeout(resolve, SPARE_HEAD_START_MS));
        }
        const primarySide = mcu.takeover;
        await this.takeover.prepare(primarySide ? (record, socket) => primarySide.adopt(record, socket) : undefined);
        mcu.conference.prepareRestarts();
      }
      if (this.takeover) {
        // Re-attach as soon as the MCU serves signaling (role primary): its replication and
        // heartbeat thread for the next standby may still be starting.
        let settled = false;
        const starting = mcu.start().finally(() => (settled = true));
        while (!settled && mcu.role !== 'primary') await new Promise((resolve) => setTimeout(resolve, 1));
        if (mcu.role === 'primary') await this.takeover.reattachAll(mcu.signaling.io);
        await starting;
      } else {
        // Reconnect mode on a service address of its own (MCU_VIP_INTERFACE): ours now, before the bind.
        await raiseVip(this.#vip.ifname, this.#vip.route, log);
        await mcu.start();
      }
    } catch (err) {
      loopStalls.stop(death.detectedAt);
      log.error('promotion failed', { error: (err as Error).message });
      this.#setState('failed');
      return;
    }
    const servingAt = Date.now();
    this.#timeline = {
      lastHeartbeatAt: death.lastHeartbeatAt,
      detectedAt: death.detectedAt,
      reason: death.reason,
      promotionStartedAt,
      restoredAt,
      servingAt,
      previousEpoch,
      epoch,
      participantsRestored,
      participantsOnSpares: restored.onSpares,
      roomsRestored: state.rooms().length,
      ...(this.takeover?.report ? { takeover: this.takeover.report } : {}),
    };
    log.info('failover step: promotion complete (replication and heartbeats ready for the next standby)', {
      failover: FailoverStep.PromotionComplete,
      epoch,
      port: mcu.port,
      promotionMs: servingAt - promotionStartedAt,
      sinceDetectedMs: Math.round(servingAt - death.detectedAt),
      // Event-loop blocks during the promotion, no mixing then: [start after detection, length, ran, waited for a CPU] ms.
      loopStalls: loopStalls.stop(death.detectedAt),
    });
    this.#setState('active');
    this.emit('promoted', this.#timeline, mcu);
  }

  /** Deliberate stop (never a failover). Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'stopped') return;
    if (this.#probeTimer) clearTimeout(this.#probeTimer);
    this.#client.close('standby shutting down');
    this.spares.close();
    this.takeover?.close();
    await this.#monitor?.close();
    await this.#mcu?.close();
    await new Promise<void>((resolve) => this.#statusServer.close(() => resolve()));
    this.#setState('stopped');
  }
}

/**
 * Takeover mode with spare paths: how long the mix runs on the spares before the connection
 * takeover starts. Two audio frames (20 ms) make the first Opus packet; the connection takeover
 * then blocks the event loop (the mixer's clock) for tens of ms.
 */
const SPARE_HEAD_START_MS = 25;

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}

type StandbyOptionsResolved = StandbyOptions & { repl: NonNullable<McuConfig['replication']> };
