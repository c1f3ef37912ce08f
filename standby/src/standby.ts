import { EventEmitter } from 'node:events';
import { redactConfig, type McuConfig } from '../../mcu/src/core/config.ts';
import { ConfigError, McuError } from '../../mcu/src/core/errors.ts';
import { AdminServer } from '../../mcu/src/http/admin.ts';
import { StandbyMetrics } from '../../mcu/src/http/metrics.ts';
import { ServiceTls, type TlsReloadOutcome } from '../../mcu/src/http/tls.ts';
import { createLogger, setLogRole } from '../../mcu/src/core/logger.ts';
import type { Mcu } from '../../mcu/src/mcu.ts';
import { Room } from '../../mcu/src/conference/room.ts';
import { SessionState } from '../../mcu/src/conference/session-state.ts';
import { CheckpointStore } from '../../mcu/src/replication/checkpoint-store.ts';
import { HeartbeatMonitor, type HeartbeatMonitorOptions, type HeartbeatVerdict } from '../../mcu/src/detection/heartbeat-monitor.ts';
import { ReplicationClient } from '../../mcu/src/replication/replication-client.ts';
import { SparePathManager } from '../../mcu/src/spare/spare-paths.ts';
import { TakeoverEngine, type TakeoverEngineOptions } from '../../mcu/src/takeover/standby.ts';
import { HostSetup, hostSetupSettings } from '../../mcu/src/takeover/fencing/host-setup.ts';
import { FailoverStep } from '../../mcu/src/wire/failover-steps.ts';
import { SnapshotExtraKey, parseSnapshotExtra } from '../../mcu/src/wire/blobs.ts';
import { newNonce, nodeIdentity, witnessFromConfig, type SyncStandby, type Witness } from '../../mcu/src/witness/witness.ts';
import { Promotion, type PromotionTimeline } from './promotion.ts';

/**
 * The life of a hot standby. `active`: it promoted itself and now runs the primary MCU.
 * `waiting`: the primary was judged dead but the witness does not answer: no promotion until it
 * does (then `promoting`), or back to `syncing`/`ready` when the primary beats again.
 */
export type StandbyState = 'syncing' | 'ready' | 'promoting' | 'waiting' | 'active' | 'stopped' | 'failed';

/** How often a standby reads the witness's epoch while it follows (shown in /status; keeps the connection warm for the compare-and-set), ms. */
const WITNESS_READ_MS = 1000;
/** After a subscription sent just before a late compare-and-set, how long a live primary has to answer with a beat, ms (a LAN round trip plus a loaded host). */
/** Witness retry: how long the primary gets to answer a fresh subscription before the next compare-and-set, ms. */
const LATE_PROMOTION_CHECK_MS = 60;
/** Synced with a witness: how often to ask it whether it names this standby as the sync standby yet, ms. */
const SYNC_POLL_MS = 20;

export type StandbyEvents = {
  state: [to: StandbyState, from: StandbyState];
  promoted: [timeline: PromotionTimeline, mcu: Mcu];
};

export interface StandbyOptions {
  /** The MCU configuration it will serve with once promoted (same service port as the primary). */
  config: McuConfig;
  /** The primary's replication address. */
  primary: { host: string; port: number };
  /** Port of the standby's own admin listener (/status, /metrics), 0: any free port. */
  statusPort: number;
  /** Its address; default config.admin.host. It asks for config.admin.token like the MCU's. */
  statusHost?: string;
  /**
   * Connection-level takeover (used when config.takeover.enabled): where to capture. Default: the
   * host setup's (config.takeover.captureInterface, else the LAN interface).
   */
  takeover?: Partial<Pick<TakeoverEngineOptions, 'captureInterface' | 'closeMark'>>;
  /** The host's network setup (firewall, VIP), installed at start and removed at stop. Default: from the config and environment (host-setup.ts). */
  hostSetup?: HostSetup;
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
  /** Firewall and VIP of this host (MCU_VIP_INTERFACE...): installed at start, the VIP raised at a promotion. */
  readonly #host: HostSetup;
  /** Host probe settings for the heartbeat monitor (MCU_HOST_PROBE_MS, MCU_HOST_PROBE_PORT). */
  readonly #hostProbe: Pick<HeartbeatMonitorOptions, 'hostProbeTimeoutMs' | 'hostProbePort'>;
  readonly #log = createLogger('standby');
  /** The standby's own admin listener (/status, /metrics), as the MCU's (mcu/src/http/admin.ts) on standby.statusPort. */
  readonly #statusServer: AdminServer;
  readonly metrics: StandbyMetrics;
  readonly #startedAt = Date.now();
  #state: StandbyState = 'syncing';
  #promotion: Promotion | null = null;
  /** Connection-level takeover (config.takeover), null in reconnect mode. */
  readonly takeover: TakeoverEngine | null;
  /** Warm spare paths with every participant's page (config.spare.enabled), handed to the media sessions at promotion. */
  readonly spares: SparePathManager;
  /** The witness (MCU_WITNESS_ENDPOINTS): a promotion needs the next epoch there; null: two-node mode. */
  readonly #witness: Witness | null;
  /** Our id on the replication link and at the witness (the primary records it as its sync standby). */
  readonly #standbyId: string = nodeIdentity('standby').node;
  #witnessTimer: NodeJS.Timeout | null = null;
  #witnessSeen: { epoch: number | null; at: number; error: string | null } | null = null;
  /** The epoch at which the witness last named us as the sync standby (null: not since we (re)synced). */
  #syncConfirmedEpoch: number | null = null;
  #syncPoll: NodeJS.Timeout | null = null;
  /** The sync key as last read. */
  #witnessSync: SyncStandby | null = null;
  /** The nonce of our compare-and-sets from the epoch we follow (see PromotionOptions.witnessNonce). */
  #witnessNonce: { epoch: number; nonce: string } | null = null;
  /**
   * The service's certificate and key (config.tls), loaded at start and reloaded on SIGHUP, so
   * the promoted MCU serves the pair in use then without reading files on the promotion path.
   */
  readonly tls: ServiceTls | null;
  /** Wakes a promotion waiting for the witness when the standby stops. */
  readonly #stopped = new AbortController();

  constructor(opts: StandbyOptions) {
    super();
    const repl = opts.config.replication;
    if (!repl) throw new ConfigError('a standby needs MCU_REPLICATION_SECRET (the same as the primary\'s)');
    this.#opts = { ...opts, repl };
    const { takeover, detection } = opts.config;
    this.#host = opts.hostSetup ?? new HostSetup(hostSetupSettings(opts.config));
    this.#hostProbe = { hostProbeTimeoutMs: detection.hostProbeMs, hostProbePort: detection.hostProbePort };
    this.takeover = takeover.enabled
      ? new TakeoverEngine({
          serviceAddress: opts.config.server.host,
          servicePort: opts.config.server.port,
          captureInterface: opts.takeover?.captureInterface ?? this.#host.settings.captureInterface,
          vip: this.#host.vip,
          ...(opts.takeover?.closeMark !== undefined ? { closeMark: opts.takeover.closeMark } : {}),
        })
      : null;
    this.spares = new SparePathManager({
      enabled: opts.config.spare.enabled,
      iceAddresses: opts.config.spare.iceAddresses,
      iceGatherTimeoutMs: opts.config.ice.gatherTimeoutMs,
    });
    this.#witness = witnessFromConfig(opts.config.witness);
    this.tls = ServiceTls.fromConfig(opts.config.tls, createLogger('tls', { owner: 'standby' }));
    this.#client = this.#createClient();
    this.metrics = new StandbyMetrics({
      ready: () => this.#state === 'ready',
      epoch: () => this.store.epoch,
      checkpointSeq: () => this.store.seq,
      checkpointParticipants: () => this.store.state.participantCount,
      sparesConnected: () => this.spares.connectedCount,
      heartbeatAgeMs: () => {
        const last = this.#monitor?.lastHeartbeatAt;
        return last == null ? null : Date.now() - last;
      },
    });
    this.#statusServer = new AdminServer({
      host: opts.statusHost ?? opts.config.admin.host,
      port: opts.statusPort,
      token: opts.config.admin.token,
      owner: 'standby',
      routes: {
        status: () => this.status(),
        metrics: async () => ({ contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() }),
      },
    });
  }

  get client(): ReplicationClient {
    return this.#client;
  }

  /**
   * The replication stream. It judges nothing: the verdict comes from the real-time heartbeat
   * thread (HeartbeatMonitor), which a loaded main thread cannot fool. The end of the stream
   * only makes us ask that thread at once.
   */
  #createClient(): ReplicationClient {
    const { repl, primary } = this.#opts;
    // A new stream: the primary records us as in sync again once we are.
    this.#syncConfirmedEpoch = null;
    const client = new ReplicationClient({
      host: primary.host,
      port: primary.port,
      secret: repl.secret,
      store: this.store,
      heartbeatIntervalMs: repl.heartbeatMs,
      standbyId: this.#standbyId,
    });
    this.takeover?.follow(client);
    this.spares.follow(client);
    client.on('synced', (info) => {
      this.#log.info('checkpoint synced', { seq: info.seq, epoch: info.epoch, primary: info.primaryId });
      this.#adoptTicketKeys(client.store.extra[SnapshotExtraKey.TlsTicketKeys]);
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
      this.#monitor?.channelClosed(false);
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

  /** The primary's TLS session ticket keys, when both serve TLS: a promotion serves with them. */
  #adoptTicketKeys(raw: unknown): void {
    if (!this.tls || raw === undefined) return;
    try {
      this.tls.adoptTicketKeys(Buffer.from(parseSnapshotExtra(SnapshotExtraKey.TlsTicketKeys, raw), 'base64'));
    } catch (err) {
      // Only resumption is lost: clients that reconnect after a failover make a full handshake.
      this.#log.warn(`the primary's TLS ticket keys not adopted: ${(err as Error).message}`, { code: err instanceof McuError ? err.code : undefined });
    }
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
      // With a witness, ready means able to promote: the witness names us as the sync standby.
      if (this.#witness && this.#syncConfirmedEpoch !== this.store.epoch) {
        this.#confirmSync(this.#witness);
        return;
      }
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

  /** The promoted MCU, from the moment the promotion builds it. */
  get mcu(): Mcu | null {
    return this.#promotion?.mcu ?? null;
  }

  get timeline(): PromotionTimeline | null {
    return this.#promotion?.timeline ?? null;
  }

  get statusPort(): number {
    return this.#statusServer.port ?? 0;
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
    await this.#host.install();
    // A standby never holds the VIP (a primary that died on this host may have left it up).
    await this.#host.vip?.drop();
    await this.#statusServer.listen();
    this.takeover?.start();
    this.#client.start();
    this.#watchWitness();
  }

  /** Asks the witness every SYNC_POLL_MS, while syncing, until it names us as the sync standby of the epoch we follow. */
  #confirmSync(witness: Witness): void {
    if (this.#syncPoll) return;
    const poll = async (): Promise<void> => {
      if (this.#state !== 'syncing') {
        this.#syncPoll = null;
        return;
      }
      try {
        const sync = await witness.syncStandby();
        this.#witnessSync = sync;
        if (sync?.epoch === this.store.epoch && sync.standbyId === this.#standbyId) {
          this.#syncPoll = null;
          this.#syncConfirmedEpoch = sync.epoch;
          this.#log.info('the witness names this standby as the sync standby', { epoch: sync.epoch, standby: this.#standbyId });
          this.#maybeReady();
          return;
        }
      } catch {
        // Unreachable: asked again below (a promotion would need it anyway).
      }
      this.#syncPoll = setTimeout(() => void poll(), SYNC_POLL_MS);
    };
    this.#syncPoll = setTimeout(() => void poll(), 0);
  }

  /**
   * While following: reads the witness's epoch every WITNESS_READ_MS, for /status and to keep a
   * connection to it warm (the compare-and-set at a promotion then costs one round trip); says
   * so once when it differs from the followed primary's.
   */
  #watchWitness(): void {
    const witness = this.#witness;
    if (!witness || this.#witnessTimer) return;
    let warned: number | null | undefined;
    const read = async (): Promise<void> => {
      if (this.#state !== 'ready' && this.#state !== 'syncing') return;
      try {
        const epoch = await witness.epoch();
        this.#witnessSeen = { epoch, at: Date.now(), error: null };
        if (this.#state === 'ready' && epoch !== this.store.epoch && warned !== epoch) {
          warned = epoch;
          this.#log.warn(`the witness holds ${epoch === null ? 'no epoch' : `epoch ${epoch}`}, the primary this standby follows serves epoch ${this.store.epoch}: a promotion would be refused (is the primary configured with the same witness and cluster?)`);
        }
      } catch (err) {
        this.#witnessSeen = { epoch: this.#witnessSeen?.epoch ?? null, at: this.#witnessSeen?.at ?? 0, error: (err as Error).message };
      }
    };
    this.#witnessTimer = setInterval(() => void read(), WITNESS_READ_MS);
    this.#witnessTimer.unref();
    void read();
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
      heartbeats: {
        received: this.#monitor?.beats ?? 0,
        lastAt: this.#monitor?.lastHeartbeatAt ?? null,
        nearMisses: this.#monitor?.nearMisses ?? null,
        // The heartbeat thread's own measure: the longest silence between two beats since it started.
        longestGapMs: this.#monitor?.longestBeatGapMs ?? null,
      },
      checkpoint: {
        rooms: store.state.rooms().length,
        participants: store.state.participantCount,
      },
      servicePort: this.#opts.config.server.port,
      // The certificate a promotion would serve (reloaded on SIGHUP); null: plain HTTP.
      tls: this.tls?.status() ?? null,
      mode: this.takeover ? 'takeover' : 'reconnect',
      spares: { enabled: this.#opts.config.spare.enabled, connected: this.spares.connectedCount, paths: this.spares.status() },
      takeover: this.takeover?.stats() ?? null,
      promotion: this.timeline,
      witness: this.#witness
        ? { cluster: this.#witness.clusterName, endpoint: this.#witness.client.endpoint, epoch: this.#witnessSeen?.epoch ?? null, readAt: this.#witnessSeen?.at ?? null, error: this.#witnessSeen?.error ?? null, syncStandby: this.#witnessSync, syncConfirmedEpoch: this.#syncConfirmedEpoch }
        : null,
      mcu: this.mcu?.status() ?? null,
      config: redactConfig(this.#opts.config),
    };
  }

  /** The primary is dead: become the primary from the checkpoint (promotion.ts). */
  async #promote(death: HeartbeatVerdict): Promise<void> {
    if (this.#state !== 'ready' && this.#state !== 'syncing') return;
    if (!this.store.hasSnapshot) {
      this.#log.error('primary died before this standby had a checkpoint: cannot take over');
      this.#setState('failed');
      return;
    }
    const promotion = new Promotion({
      config: this.#opts.config,
      bindRetryMs: this.#opts.repl.bindRetryMs,
      store: this.store,
      spares: this.spares,
      takeover: this.takeover,
      vip: this.#host.vip,
      hostSetup: this.#host,
      tls: this.tls,
      supersede: (epoch) => this.#stopFollowing(epoch),
      witness: this.#witness,
      witnessRetryMs: this.#opts.config.witness.retryMs,
      witnessNonce: this.#nonceFor(this.store.epoch),
      standbyId: this.#standbyId,
      waitForWitness: (ms) => this.#waitForWitness(ms),
    });
    this.#promotion = promotion;
    this.#setState('promoting');
    const outcome = await promotion.run(death);
    switch (outcome.kind) {
      case 'promoted':
        this.#setState('active');
        this.emit('promoted', outcome.timeline, outcome.mcu);
        return;
      case 'failed':
        this.#setState('failed');
        return;
      case 'not-promoted':
        this.#promotion = null;
        if (outcome.why === 'stopped') return;
        if (outcome.why === 'witness-lost') {
          // Our checkpoint belongs to an epoch the witness has left behind: of no further use.
          this.#setState('failed');
          return;
        }
        this.#followAgain();
        return;
    }
  }

  #nonceFor(epoch: number): string {
    if (this.#witnessNonce?.epoch !== epoch) this.#witnessNonce = { epoch, nonce: newNonce() };
    return this.#witnessNonce.nonce;
  }

  /**
   * Promotion, witness unreachable: waits `ms`, state `waiting`, watching the primary's beats
   * on a fresh heartbeat thread (the one that judged it dead has given its verdict for good).
   */
  async #waitForWitness(ms: number): Promise<'retry' | 'primary-alive' | 'stopped'> {
    if (this.#stopped.signal.aborted) return 'stopped';
    if (this.#state !== 'waiting') {
      this.#setState('waiting');
      await this.#monitor?.close();
      this.#monitor = null;
      this.#startMonitor(this.store.epoch);
    }
    const monitor = this.#monitor;
    if (monitor?.lastHeartbeatAt != null) return 'primary-alive';
    return new Promise((resolve) => {
      const done = (outcome: 'retry' | 'primary-alive' | 'stopped'): void => {
        clearTimeout(timer);
        monitor?.off('first-beat', onBeat);
        this.#stopped.signal.removeEventListener('abort', onStop);
        resolve(outcome);
      };
      const onBeat = (): void => done('primary-alive');
      const onStop = (): void => done('stopped');
      // Before the next compare-and-set, ask the primary once more and give it a moment to
      // answer: after a partition heals the witness may answer before the renewed subscription
      // reaches a primary that served all along. Not for safety (the sync key orders a primary
      // going on without us and our promotion at the witness) but to spare a needless failover
      // of a live primary. Found by scripts/lab/partition-run.ts.
      let timer = setTimeout(() => {
        monitor?.subscribeNow();
        timer = setTimeout(() => done('retry'), LATE_PROMOTION_CHECK_MS);
      }, ms);
      monitor?.once('first-beat', onBeat);
      this.#stopped.signal.addEventListener('abort', onStop, { once: true });
    });
  }

  /** The primary beats again after a verdict the witness did not confirm: follow it again (ready once synced and beating). */
  #followAgain(): void {
    this.#setState('syncing');
    if (this.#client.state !== 'synced' && this.#client.state !== 'syncing' && this.#client.state !== 'connecting') {
      this.#client.close('reconnecting');
      this.#client = this.#createClient();
      this.#client.start();
    }
    this.#maybeReady();
  }

  /** Promotion, fencing: the old primary learns it is superseded by `epoch`, then we stop following it. */
  #stopFollowing(epoch: number): void {
    // The epoch is ours (won at the witness after a wait): promoting.
    if (this.#state === 'waiting') this.#setState('promoting');
    if (this.#probeTimer) clearTimeout(this.#probeTimer);
    // Before we stop following: a primary that was only frozen or cut off reads this and fences itself.
    this.#client.supersede(epoch);
    this.#client.close('promoting');
    void this.#monitor?.close();
    this.#monitor = null;
  }

  /**
   * SIGHUP: reloads the certificate and key; a promoted MCU's new connections get the new pair at
   * once (it serves this ServiceTls), before a promotion the pair is what it will serve. A pair
   * that does not load is logged and the one in use kept. Null: plain HTTP.
   */
  reloadTls(): TlsReloadOutcome | null {
    if (!this.tls) {
      this.#log.info('no TLS to reload: plain HTTP (tls.certFile and tls.keyFile unset)');
      return null;
    }
    return this.tls.reload();
  }

  /** Deliberate stop (never a failover). Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#stopped.abort();
    if (this.#probeTimer) clearTimeout(this.#probeTimer);
    if (this.#witnessTimer) clearInterval(this.#witnessTimer);
    if (this.#syncPoll) clearTimeout(this.#syncPoll);
    this.#client.close('standby shutting down');
    this.spares.close();
    this.takeover?.close();
    await this.#monitor?.close();
    await this.mcu?.close();
    await this.#statusServer.close();
    this.tls?.close();
    await this.#host.close();
    this.#setState('stopped');
  }
}

type StandbyOptionsResolved = StandbyOptions & { repl: NonNullable<McuConfig['replication']> };
