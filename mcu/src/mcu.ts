import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket as NetSocket } from 'node:net';
import { Conference, type RestoreOutcome, type SpareStart } from './conference/conference.ts';
import { redactConfig, type McuConfig } from './core/config.ts';
import { ConfigError } from './core/errors.ts';
import { PrimaryFencedError } from './takeover/errors.ts';
import { createLogger, setLogRole } from './core/logger.ts';
import { McuMetrics, type McuMetricsSource } from './http/metrics.ts';
import { AdminServer, serveAdminPath, type AdminRoutes } from './http/admin.ts';
import { sendJson, serveStatic } from './http/http-routes.ts';
import { ServiceTls, type TlsReloadOutcome, type TlsStatus } from './http/tls.ts';
import { SessionState } from './conference/session-state.ts';
import { SignalingServer } from './signaling/signaling-server.ts';
import { ReplicationServer, type ReplicationStats } from './replication/replication-server.ts';
import { HeartbeatBeacon } from './detection/heartbeat-beacon.ts';
import { TakeoverPrimary } from './takeover/primary.ts';
import type { TakeoverEngine, TakeoverReport } from './takeover/standby.ts';
import type { TransportRecord } from './takeover/transport/transport-record.ts';
import { FencingGuard, type FencedInfo, type FencingStatus } from './takeover/fencing/fencing.ts';
import { HostSetup, hostSetupSettings } from './takeover/fencing/host-setup.ts';
import { ServiceFence } from './takeover/fencing/service-fence.ts';
import { kernelLeaseTtlMs } from './takeover/fencing/kernel-lease.ts';
import { failureDetectorSettings } from './detection/failure-detector.ts';
import { PrimaryLease, type PrimaryLeaseStatus } from './witness/primary-lease.ts';
import { SyncStandbyRecord, type SyncStandbyStatus } from './witness/sync-standby.ts';
import { newNonce, nodeIdentity, witnessFromConfig, type PrimaryRecord, type Witness } from './witness/witness.ts';
import { WitnessUnreachableError } from './witness/errors.ts';
import { SpareRelay, type SpareStatus } from './spare/spare-relay.ts';
import type { SpareHandoff } from './spare/spare-paths.ts';
import { FailoverStep } from './wire/failover-steps.ts';
import { MediaEdge } from './media/edge/media-edge.ts';
import { SnapshotExtraKey } from './wire/blobs.ts';

/**
 * The life of an MCU process. Only a `primary` serves calls. `fenced`: a primary that learned
 * another one took over its clients (takeover mode, a VIP or a witness); it writes nothing more and exits.
 */
export type McuRole = 'starting' | 'standby' | 'promoting' | 'primary' | 'fenced' | 'stopping' | 'stopped';

export interface McuStatus {
  role: McuRole;
  pid: number;
  epoch: number;
  uptimeSeconds: number;
  port: number;
  /** `https` with tls.certFile and tls.keyFile (the page, signaling over WSS), `http` without. */
  scheme: 'http' | 'https';
  /** The certificate served (tls.certFile), its fingerprint and reloads; null when serving plain HTTP. */
  tls: TlsStatus | null;
  /**
   * How clients survive a failover: `reconnect` (signaling reconnects and resumes) or
   * `takeover` (MCU_TAKEOVER=1: the standby rebuilds each signaling connection in place).
   */
  mode: 'reconnect' | 'takeover';
  /** True while a synced hot standby would take over if this primary died. */
  protected: boolean;
  replication: ReplicationStats | null;
  lastFailover: FailoverRecord | null;
  /** Takeover mode: the fencing guard (stalls verified, standby losses judged, fenced or not); null otherwise. */
  fencing: FencingStatus | null;
  /** With a witness (MCU_WITNESS_ENDPOINTS): this primary's hold on its epoch there; null in two-node mode. */
  witness: (PrimaryLeaseStatus & { syncStandby: SyncStandbyStatus | null }) | null;
  rooms: Array<{ name: string; participants: number; connected: number }>;
  participants: number;
  /** Warm spare media paths: on or off (MCU_SPARE_PATHS), how many are connected, and each participant's. */
  spares: {
    enabled: boolean;
    connected: number;
    participants: Array<{ id: string; room: string; spare: SpareStatus['state'] | 'none'; connected: boolean; pathId: string | null }>;
  };
  /** The effective configuration, secrets redacted. */
  config: McuConfig;
}

/** How this MCU became the primary, when it was a standby (epoch-ms timestamps). */
export interface FailoverRecord {
  previousEpoch: number;
  lastHeartbeatAt: number | null;
  detectedAt: number;
  reason: string;
  promotedAt: number;
  participantsRestored: number;
}

export interface McuOptions {
  config: McuConfig;
  /** Starting epoch (a promoted standby starts above the dead primary's). Default 1. */
  epoch?: number;
  /** Starting session state (a promoted standby starts from its checkpoint). */
  state?: SessionState;
  /** Set when a standby promotes itself: keep trying to bind the ports the dead primary's kernel is releasing. */
  bindRetryMs?: number;
  /**
   * The host's network setup (firewall, VIP) when someone else owns it (a promoting standby
   * installed it at its start and removes it at its stop). Default: this MCU installs its own at
   * start, raises the VIP, and removes it all on close().
   */
  hostSetup?: HostSetup;
  /**
   * With a witness: a promoting standby already won this MCU's epoch there (its compare-and-set,
   * standby/src/promotion.ts): the record it wrote and performance.now() of the win. The MCU holds
   * the epoch from there; without it, a primary claims the next epoch at start.
   */
  witnessClaim?: { record: PrimaryRecord; confirmedAt: number };
  /**
   * The service's TLS when someone else holds it (a standby loaded and reloads it from its start,
   * so a promotion reads no file). Default: this MCU's own from config.tls (null: plain HTTP).
   */
  tls?: ServiceTls | null;
}

export type McuEvents = {
  /** A participant's client came back and resumed its session (or was re-attached). */
  'participant-resumed': [participantId: string];
  /** A participant's media path is up again after a takeover (its answer to the restart offer was applied). */
  'media-restarted': [participantId: string, tookMs: number];
};

/**
 * One MCU process: the demo page over HTTP, socket.io signaling, the conference (rooms, peer
 * connections, mixers), and /status and /metrics on the admin listener (http/admin.ts). Close
 * order on shutdown: stop accepting, close the rooms, then signaling, then HTTP.
 */
export class Mcu extends EventEmitter<McuEvents> {
  readonly config: McuConfig;
  readonly state: SessionState;
  readonly conference: Conference;
  /** The mediasoup worker (media.plane = mediasoup), null on the wrtc plane. */
  readonly mediaEdge: MediaEdge | null;
  readonly metrics = new McuMetrics(this.#metricsSource());
  /** The public listener: HTTPS with config.tls (ServiceTls), else plain HTTP (e.g. behind a TLS-terminating proxy). */
  readonly http: HttpServer | HttpsServer;
  /** The certificate and key served (reloaded on SIGHUP: reloadTls()); null: plain HTTP. */
  readonly tls: ServiceTls | null;
  readonly #ownsTls: boolean;
  /** /status and /metrics for operators (admin.host:admin.port; the public listener serves them only with admin.token). */
  readonly admin: AdminServer;
  readonly signaling: SignalingServer;
  readonly #log = createLogger('mcu');
  readonly #startedAt = Date.now();
  #role: McuRole = 'starting';
  #epoch: number;
  #closing: Promise<void> | null = null;
  readonly #bindRetryMs: number;
  /**
   * Resolves the moment this MCU serves signaling (role `primary`), before replication and
   * heartbeats for a next standby start; rejects when start() fails before that.
   */
  readonly serving: Promise<void>;
  #servingSettled: { resolve: () => void; reject: (err: Error) => void } = { resolve: () => undefined, reject: () => undefined };
  replication: ReplicationServer | null = null;
  #beacon: HeartbeatBeacon | null = null;
  #lastFailover: FailoverRecord | null = null;
  /** Connection-level takeover on the primary side (config.takeover), null in reconnect mode. */
  readonly takeover: TakeoverPrimary | null;
  #fencing: FencingGuard | null = null;
  /** Fencing in every mode with a VIP or a witness: the VIP dropped (takeover mode: behind the guard's output fence). */
  #serviceFence: ServiceFence | null = null;
  /** The witness (MCU_WITNESS_ENDPOINTS), null in two-node mode. */
  readonly #witness: Witness | null;
  readonly #witnessClaim: McuOptions['witnessClaim'];
  /** Our hold on the epoch at the witness, from the claim at start (or the standby's win) on. */
  #lease: PrimaryLease | null = null;
  /** With a witness: which standby may promote (witness/sync-standby.ts). */
  #syncStandby: SyncStandbyRecord | null = null;
  readonly #vipInterface: string | null;
  readonly #lanInterface: string | null;
  readonly #hostSetup: HostSetup;
  /** This MCU installed the host setup (and removes it), rather than a standby that promoted into it. */
  readonly #ownsHostSetup: boolean;
  readonly #fenced: Promise<FencedInfo>;
  #resolveFenced: (info: FencedInfo) => void = () => undefined;
  /** Relays the standby's warm spare path offers to the pages and their answers back. */
  readonly spares: SpareRelay;

  constructor(opts: McuOptions) {
    super();
    this.config = opts.config;
    this.#ownsHostSetup = opts.hostSetup === undefined;
    this.#hostSetup = opts.hostSetup ?? new HostSetup(hostSetupSettings(this.config));
    this.#vipInterface = this.#hostSetup.vip?.interface ?? opts.config.takeover.vipInterface;
    this.#lanInterface = opts.config.takeover.lanInterface;
    this.#witness = witnessFromConfig(opts.config.witness);
    this.#witnessClaim = opts.witnessClaim;
    this.#fenced = new Promise((resolve) => (this.#resolveFenced = resolve));
    this.#bindRetryMs = opts.bindRetryMs ?? 0;
    this.serving = new Promise((resolve, reject) => (this.#servingSettled = { resolve, reject }));
    // A plain primary awaits start() only, which rejects with the same error.
    this.serving.catch(() => undefined);
    this.#epoch = opts.epoch ?? 1;
    this.state = opts.state ?? new SessionState();
    this.mediaEdge = this.config.media.plane === 'mediasoup' ? new MediaEdge(this.config.media) : null;
    this.conference = new Conference(this.config, this.state, this.mediaEdge);
    this.conference.on('participant-resumed', (participantId) => this.emit('participant-resumed', participantId));
    this.conference.on('media-restarted', (participantId, tookMs) => this.emit('media-restarted', participantId, tookMs));
    this.#ownsTls = opts.tls === undefined;
    const tls = opts.tls === undefined ? ServiceTls.fromConfig(this.config.tls, createLogger('tls', { owner: 'mcu' })) : opts.tls;
    this.tls = tls;
    // config.ts refuses both already: a standby cannot continue a TLS session at a takeover yet.
    if (this.config.takeover.enabled && tls) throw new ConfigError('takeover mode (MCU_TAKEOVER=1) cannot serve TLS yet: leave tls.certFile and tls.keyFile unset');
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      void this.#route(req, new URL(req.url ?? '/', 'http://localhost').pathname, res);
    };
    let plain: HttpServer | null = null;
    if (tls) this.http = tls.createServer(handler);
    else this.http = plain = createServer(handler);
    this.admin = new AdminServer({ ...this.config.admin, routes: this.#adminRoutes(), owner: 'mcu' });
    this.signaling = new SignalingServer(this.http, this.conference, this.config, {
      epoch: () => this.#epoch,
      accepting: () => this.#role === 'primary',
      role: () => this.#role,
      takeover: this.config.takeover.enabled,
    });
    this.spares = new SpareRelay({
      io: this.signaling.io,
      conference: this.conference,
      enabled: this.config.spare.enabled,
      signalingSurvives: this.config.takeover.enabled,
    });
    // Right after the socket.io server: the session recorder must see every connection.
    this.takeover =
      this.config.takeover.enabled && plain
        ? new TakeoverPrimary({ httpServer: plain, io: this.signaling.io, host: this.config.server.host, port: this.config.server.port })
        : null;
  }

  get role(): McuRole {
    return this.#role;
  }

  /** The one place the role changes: every transition is logged with its timestamp. */
  protected setRole(role: McuRole): void {
    if (role === this.#role) return;
    this.#log.info('role change', { from: this.#role, to: role, epoch: this.#epoch });
    this.#role = role;
    setLogRole(role);
  }

  get epoch(): number {
    return this.#epoch;
  }

  protected set epoch(value: number) {
    this.#epoch = value;
  }

  /** `https` when serving TLS (config.tls), else `http`. */
  get scheme(): 'http' | 'https' {
    return this.tls ? 'https' : 'http';
  }

  /**
   * Reloads the certificate and key (SIGHUP): new connections get the new pair, open ones (calls,
   * signaling) keep theirs; a pair that does not load is logged and the one in use kept.
   * Null when serving plain HTTP.
   */
  reloadTls(): TlsReloadOutcome | null {
    if (!this.tls) {
      this.#log.info('no TLS to reload: serving plain HTTP (tls.certFile and tls.keyFile unset)');
      return null;
    }
    return this.tls.reload();
  }

  /** The bound HTTP/signaling port (useful with port 0). */
  get port(): number {
    const address = (this.takeover ? this.takeover.acceptor.address() : this.http.address()) as AddressInfo | null;
    return address?.port ?? this.config.server.port;
  }

  /** The bound port of the admin listener (/status, /metrics); null until it listens. */
  get adminPort(): number | null {
    return this.admin.port;
  }

  /**
   * Binds the HTTP/signaling port (and the replication port) and starts serving as the primary.
   * The admin listener binds first (a port in use stops the start before the host is touched);
   * in a promotion, last (the service comes first; a port still held is only warned about).
   */
  async start(): Promise<void> {
    if (this.#role === 'starting' && this.#bindRetryMs > 0) this.setRole('promoting');
    const promoting = this.#role === 'promoting';
    try {
      if (!promoting) await this.admin.listen();
      // The epoch is ours at the witness before we raise the VIP or serve.
      if (this.#witness) await this.#holdEpoch(this.#witness);
      this.#assertEpochHeld();
      if (this.#ownsHostSetup) await this.#setUpHost();
      this.#assertEpochHeld();
      // The mediasoup worker before serving: a missing or broken worker is a start error, not a failed call.
      await this.mediaEdge?.start();
      await withBindRetry(() => this.#listenHttp(), this.#bindRetryMs, 'service port');
      this.#assertEpochHeld();
    } catch (err) {
      // Lost the epoch while starting: never leave the VIP up behind us.
      if (this.#lease?.state === 'lost') await this.#hostSetup.vip?.drop().catch(() => undefined);
      await this.#lease?.close({ revoke: false });
      this.#serviceFence?.close();
      this.#servingSettled.reject(err as Error);
      throw err;
    }
    // Serve at once: a promoted standby's clients are already knocking. Replication and
    // heartbeats only matter once a new standby comes, so they start after.
    this.setRole('primary');
    this.#servingSettled.resolve();
    // Whoever awaits `serving` goes first: a promoted standby's media and sessions before replication.
    await Promise.resolve();
    // Fencing from here on (a superseded or lost epoch): its resident `ip` starts off the path to
    // serving, and before any timer or input could ask for it.
    if (this.#vipInterface || this.#witness) this.#serviceFence = new ServiceFence({ vipInterface: this.#vipInterface, epoch: () => this.#epoch });
    if (this.#lastFailover) {
      this.#lastFailover.promotedAt = Date.now();
      this.#log.info('failover step: serving as primary', {
        failover: FailoverStep.Serving,
        epoch: this.#epoch,
        sinceDetectedMs: Math.round(this.#lastFailover.promotedAt - this.#lastFailover.detectedAt),
      });
    }
    const repl = this.config.replication;
    if (repl) {
      const create = (): ReplicationServer =>
        new ReplicationServer({
          state: this.state,
          epoch: this.#epoch,
          secret: repl.secret,
          host: repl.host,
          port: repl.port,
          heartbeatIntervalMs: repl.heartbeatMs,
          service: { port: this.port, host: this.config.server.host },
        });
      let replication: ReplicationServer | null = null;
      await withBindRetry(
        async () => {
          const candidate = create();
          try {
            await candidate.listen();
            replication = candidate;
          } catch (err) {
            await candidate.close().catch(() => undefined);
            throw err;
          }
        },
        this.#bindRetryMs,
        'replication port',
      );
      const bound = replication as unknown as ReplicationServer;
      if (this.#witness) {
        const sync = new SyncStandbyRecord({ witness: this.#witness, epoch: this.#epoch, retryMs: this.config.witness.retryMs });
        sync.on('superseded', (epoch) => void this.#fence(`the witness holds epoch ${epoch}, above ours (${this.#epoch})`));
        this.#syncStandby = sync;
      }
      bound.on('standby-synced', (info) => {
        this.#log.info('protected: standby synced', { standby: info.standbyId, syncMs: info.syncMs });
        this.#syncStandby?.synced(info.standbyId);
      });
      bound.on('standby-lost', (info) => {
        this.#log.warn('unprotected: standby lost', { standby: info.standbyId, reason: info.reason, detail: info.detail });
        // Takeover mode: the fencing guard waits for this before releasing held output.
        void this.#syncStandby?.lost(info.standbyId);
      });
      this.replication = bound;
      const tls = this.tls;
      // The standby serves with our session ticket keys: clients resume TLS there after a failover.
      if (tls) bound.addSnapshotExtra(() => ({ [SnapshotExtraKey.TlsTicketKeys]: tls.ticketKeys.toString('base64') }));
      this.spares.setReplication(bound);
      // Output commit and session records ride the same ordered channel as the session state.
      this.takeover?.setReplication(bound);
      if (this.takeover) this.#armFencing(bound, repl);
      else if (this.#serviceFence) {
        // Reconnect mode with a VIP or a witness: a standby promoting itself over us takes the
        // address (and the epoch): we must let go of both, as in takeover mode.
        bound.on('superseded', (info) => void this.#fence(`superseded: standby ${info.standbyId} is promoting itself with epoch ${info.epoch}`));
      }
      // Heartbeats on UDP, same port number, from a native real-time thread (detection/heartbeat-beacon.ts).
      const replicationPort = bound.address()!.port;
      await withBindRetry(
        async () => {
          const firewall = this.#hostSetup.firewall;
          const beacon = new HeartbeatBeacon({
            host: repl.host,
            port: replicationPort,
            secret: repl.secret,
            epoch: this.#epoch,
            intervalMs: repl.heartbeatMs,
            // Beats and the host firewall's lease stop together (takeover/fencing/kernel-lease.ts).
            ...(firewall ? { kernelLease: { port: firewall.servicePort, ttlMs: kernelLeaseTtlMs(standbyVerdictMs(repl), repl.heartbeatMs) } } : {}),
          });
          try {
            await beacon.start();
            this.#beacon = beacon;
          } catch (err) {
            await beacon.close();
            throw err;
          }
        },
        this.#bindRetryMs,
        'heartbeat port',
      );
    }
    if (promoting) {
      await this.admin.listen(this.#bindRetryMs).catch((err: unknown) => {
        this.#log.warn('serving without the admin listener: /status and /metrics are not served', { error: (err as Error).message });
      });
    }
    this.#log.info('MCU serving', {
      port: this.port,
      host: this.config.server.host,
      scheme: this.scheme,
      ...(this.tls ? { fingerprint256: this.tls.credentials.fingerprint256, certificateValidTo: this.tls.credentials.validTo } : {}),
      adminPort: this.admin.port ?? undefined,
      epoch: this.#epoch,
      replicationPort: this.replication?.address()?.port,
    });
  }

  /**
   * With a witness: a fresh primary claims the next epoch there (refused while another primary's
   * record is attached to a live lease), a promoted standby's MCU holds the one its standby won;
   * then the lease keeps it (primary-lease.ts), and losing it fences this primary.
   */
  async #holdEpoch(witness: Witness): Promise<void> {
    const started = performance.now();
    let record: PrimaryRecord;
    let leaseId: string | null = null;
    let confirmedAt: number;
    if (this.#witnessClaim) {
      ({ record, confirmedAt } = this.#witnessClaim);
    } else {
      // A witness that does not answer at once (starting, electing a leader) is asked again for a while.
      const nonce = newNonce();
      const deadline = started + WITNESS_CLAIM_PATIENCE_MS;
      for (;;) {
        try {
          const lease = await witness.client.leaseGrant(2);
          leaseId = lease.id;
          confirmedAt = performance.now();
          record = await witness.claimFresh(nodeIdentity('primary'), lease.id, nonce);
          break;
        } catch (err) {
          if (!(err instanceof WitnessUnreachableError) || performance.now() > deadline) throw err;
          this.#log.warn(`claiming an epoch at the witness: ${err.message}; asking again`);
          await new Promise((resolve) => setTimeout(resolve, this.config.witness.retryMs));
        }
      }
      this.#epoch = record.epoch;
      this.#log.info('epoch claimed at the witness', { epoch: record.epoch, cluster: witness.clusterName, endpoint: witness.client.endpoint, ms: Math.round((performance.now() - started) * 10) / 10 });
    }
    const lease = new PrimaryLease({ witness, record, leaseId, ttlMs: this.config.witness.leaseTtlMs, confirmedAt });
    // Once serving: fenced. Before (starting, promoting): start() sees it and gives up instead.
    lease.on('lost', (loss) => {
      if (this.#role === 'primary') void this.#fence(loss.detail);
    });
    this.#lease = lease;
    lease.start();
  }

  /** The witness took the epoch back (a higher one, or the lease expired) while we were starting: never serve it. */
  #assertEpochHeld(): void {
    const loss = this.#lease?.loss;
    if (loss) throw new PrimaryFencedError(loss.detail);
  }

  /**
   * Stops serving for good, in every mode: takeover mode through the fencing guard (output
   * commit fenced first; its events do the rest), otherwise the service fence (VIP down, role
   * `fenced`, heartbeats and replication stopped). whenFenced() resolves after.
   */
  async #fence(reason: string): Promise<void> {
    if (this.#role === 'stopping' || this.#role === 'stopped') return;
    if (this.#fencing) {
      await this.#fencing.fence(reason);
      return;
    }
    const fence = this.#serviceFence;
    if (!fence || fence.fenced) return;
    this.setRole('fenced');
    this.#syncStandby?.close();
    void this.#lease?.close({ revoke: false });
    void this.#beacon?.close();
    const info = await fence.fence(reason);
    // No goodbye: a fenced primary did not stop on purpose; its standby judges for itself (and
    // the witness decides whether it may take over).
    await this.replication?.close(`fenced: ${reason}`, { announce: false }).catch(() => undefined);
    this.#resolveFenced(info);
  }

  /** The firewall and the VIP this host needs (host-setup.ts), then the VIP raised: this MCU serves it. */
  async #setUpHost(): Promise<void> {
    const host = this.#hostSetup;
    await host.install();
    if (!host.vip) return;
    try {
      const ms = await host.vip.raise();
      this.#log.info('VIP raised', { interface: host.vip.interface, address: host.vip.address, ms: Math.round(ms * 10) / 10 });
    } catch (err) {
      await host.close();
      throw err;
    }
  }

  /**
   * Takeover mode: a standby that took over while we were frozen or cut off must find us unable
   * to write (fencing.ts). Fencing is final: role `fenced`, heartbeats stop, replication closes.
   */
  #armFencing(server: ReplicationServer, repl: NonNullable<McuConfig['replication']>): void {
    const takeover = this.takeover;
    if (!takeover || this.#fencing) return;
    const guard = new FencingGuard({
      committer: takeover.committer,
      replication: server,
      secret: repl.secret,
      epoch: () => this.#epoch,
      probePort: server.address()?.port ?? repl.port,
      localAddress: repl.host,
      lanInterface: this.#lanInterface,
      vipInterface: this.#vipInterface,
      ...(this.#serviceFence ? { serviceFence: this.#serviceFence } : {}),
      stallMs: repl.heartbeatMs * repl.missedHeartbeats,
      beaconPauses: () => this.#beacon?.pauses() ?? null,
      ...(this.#syncStandby ? { clearSyncStandby: (standbyId: string) => this.#syncStandby!.lost(standbyId) } : {}),
    });
    guard.on('state', (to) => {
      if (to !== 'fenced') return;
      this.setRole('fenced');
      this.#syncStandby?.close();
      void this.#lease?.close({ revoke: false });
      void this.#beacon?.close();
    });
    guard.on('fenced', (info) => {
      void (async () => {
        await this.replication?.close(`fenced: ${info.reason}`, { announce: false }).catch(() => undefined);
        this.#resolveFenced(info);
      })();
    });
    this.#fencing = guard;
  }

  /** Resolves once this primary fenced itself (any mode): the process should exit with FENCED_EXIT_CODE. */
  whenFenced(): Promise<FencedInfo> {
    return this.#fenced;
  }

  /** A synced standby holds the checkpoint and its heartbeat thread listens: a crash now would be taken over. */
  isProtected(): boolean {
    return this.replication?.stats().standby === 'synced' && (this.#beacon?.subscribers ?? 0) > 0;
  }

  /** Records how this MCU became the primary (a promoted standby), for /status, /metrics and the timeline. */
  noteFailover(record: Omit<FailoverRecord, 'promotedAt'>): void {
    this.#lastFailover = { ...record, promotedAt: Date.now() };
  }

  get lastFailover(): FailoverRecord | null {
    return this.#lastFailover;
  }

  // ---- A standby's promotion into this MCU (standby/src/promotion.ts), step by step ----

  /**
   * Rebuilds the rooms and participants of the session state this MCU was built with (the
   * standby's checkpoint); a participant with a connected warm spare path (`spareOf`) adopts it.
   * The others' restart offers wait for prepareMediaRestarts().
   */
  restoreFromCheckpoint(spareOf: (participantId: string) => SpareHandoff | null): RestoreOutcome {
    return this.conference.restore({ prepareMedia: false, spares: spareOf });
  }

  /** Starts the mix on every adopted spare path; each participant's start. */
  startSpareMedia(): SpareStart[] {
    return this.conference.startSpares();
  }

  /** Prepares the restart offer of every participant without a media path (takeover mode: once the VIP is up). */
  prepareMediaRestarts(): number {
    return this.conference.prepareRestarts();
  }

  /** Takeover mode: a connection the standby's takeover engine rebuilt is protected here like an accepted one. */
  adoptConnection(record: TransportRecord, socket: NetSocket): void {
    if (!this.takeover) throw new ConfigError('adopting a rebuilt connection needs takeover mode (MCU_TAKEOVER=1)');
    this.takeover.adopt(record, socket);
  }

  /** Takeover mode, once serving: re-attaches the rebuilt connections' socket.io sessions to this MCU's signaling. */
  reattachSessions(engine: TakeoverEngine): Promise<TakeoverReport> {
    return engine.reattachAll(this.signaling.io);
  }

  #listenHttp(): Promise<void> {
    // Takeover mode: the TransportAcceptor listens and hands each connection to the HTTP server.
    if (this.takeover) return this.takeover.listen().then(() => undefined);
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.http.off('listening', onListening);
        reject(err);
      };
      const onListening = (): void => {
        this.http.off('error', onError);
        resolve();
      };
      this.http.once('error', onError);
      this.http.once('listening', onListening);
      this.http.listen(this.config.server.port, this.config.server.host);
    });
  }

  status(): McuStatus {
    const conference = this.conference.status();
    return {
      role: this.#role,
      pid: process.pid,
      epoch: this.#epoch,
      uptimeSeconds: Math.round((Date.now() - this.#startedAt) / 100) / 10,
      port: this.port,
      scheme: this.scheme,
      tls: this.tls?.status() ?? null,
      mode: this.takeover && this.takeover.acceptor.stats().takeoverUnavailable === null ? 'takeover' : 'reconnect',
      protected: this.isProtected(),
      replication: this.replication?.stats() ?? null,
      lastFailover: this.#lastFailover,
      fencing: this.#fencing?.status() ?? null,
      witness: this.#lease ? { ...this.#lease.status(), syncStandby: this.#syncStandby?.status() ?? null } : null,
      rooms: conference.rooms,
      participants: conference.participants,
      spares: this.#spareStatus(),
      config: redactConfig(this.config),
    };
  }

  #spareStatus(): McuStatus['spares'] {
    const participants: McuStatus['spares']['participants'] = [];
    for (const room of this.conference.rooms()) {
      for (const p of room.participants()) {
        const spare = this.spares.spareOf(p.id);
        participants.push({ id: p.id, room: room.name, spare: spare?.state ?? 'none', connected: spare?.state === 'connected', pathId: spare?.pathId ?? null });
      }
    }
    return { enabled: this.spares.enabled, connected: participants.filter((p) => p.connected).length, participants };
  }

  /** What the admin listener serves, and the public one with the admin token. */
  #adminRoutes(): AdminRoutes {
    return {
      status: () => this.status(),
      metrics: async () => ({ contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() }),
    };
  }

  async #route(req: IncomingMessage, path: string, res: ServerResponse): Promise<void> {
    try {
      if (req.method !== undefined && req.method !== 'GET' && req.method !== 'HEAD') {
        sendJson(res, 405, { error: 'only GET is served here' });
      } else if (await serveAdminPath(path, req, res, this.#adminRoutes(), { token: this.config.admin.token, listener: 'public' })) {
        // /status, /metrics: only with the admin token here.
      } else if (!(await serveStatic(path, res))) {
        sendJson(res, 404, { error: `nothing at ${path}` });
      }
    } catch (err) {
      this.#log.error('HTTP handler failed', { path, error: (err as Error).stack });
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.end();
    }
  }

  /** Read at each scrape of /metrics. */
  #metricsSource(): McuMetricsSource {
    return {
      occupancy: () => {
        const status = this.conference.status();
        return { rooms: status.rooms.length, participants: status.participants };
      },
      mixerTotals: () => this.conference.mixerTotals(),
      epoch: () => this.#epoch,
      isProtected: () => this.isProtected(),
      replication: () => this.replication?.stats() ?? null,
      failover: () => {
        const f = this.#lastFailover;
        return f && { detectionMs: f.lastHeartbeatAt === null ? null : f.detectedAt - f.lastHeartbeatAt, promotionMs: f.promotedAt - f.detectedAt };
      },
      signalingRefusals: () => this.signaling.refusals(),
    };
  }

  /** Deliberate, ordered shutdown. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#fencing?.close();
    this.setRole('stopping');
    // Tell the standby first: a deliberate stop must never look like a crash.
    await this.replication?.close('primary shutting down');
    this.#syncStandby?.close();
    // Our record goes with the lease: a primary may start again at once.
    await this.#lease?.close();
    await this.#beacon?.close();
    this.spares.close();
    this.conference.close('shutdown');
    this.mediaEdge?.close();
    await this.signaling.close();
    await this.takeover?.close();
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
    await this.admin.close();
    if (this.#ownsTls) this.tls?.close();
    // Last: a deliberate stop leaves the host as it found it.
    if (this.#ownsHostSetup) await this.#hostSetup.close();
    this.#serviceFence?.close();
    this.setRole('stopped');
  }
}

/** How long a starting primary keeps asking a witness that does not answer for its epoch, ms. */
const WITNESS_CLAIM_PATIENCE_MS = 10_000;

/** Retries a bind while the port is still held (a dead primary's kernel releasing it), up to `retryMs`. */
async function withBindRetry(bind: () => Promise<void>, retryMs: number, what: string): Promise<void> {
  const deadline = Date.now() + retryMs;
  const log = createLogger('mcu');
  let attempts = 0;
  for (;;) {
    try {
      await bind();
      if (attempts > 0) log.info('bound after retries', { what, attempts });
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' || Date.now() >= deadline) {
        throw new ConfigError(`cannot bind the ${what}: ${(err as Error).message}${code === 'EADDRINUSE' ? ' (another MCU still serves it?)' : ''}`);
      }
      attempts++;
      await new Promise((r) => setTimeout(r, 2));
    }
  }
}

/** The silence after which a standby with this configuration judges a live-hosted primary dead: missed beats plus the confirm window. */
function standbyVerdictMs(repl: NonNullable<McuConfig['replication']>): number {
  const d = failureDetectorSettings({ intervalMs: repl.heartbeatMs, missedBeats: repl.missedHeartbeats });
  return d.intervalMs * d.missedBeats + d.confirmMs;
}
