import client from 'prom-client';

/** What /metrics reads from the live MCU, at each scrape. */
export interface McuMetricsSource {
  /** Rooms and participants now. */
  occupancy(): { rooms: number; participants: number };
  /** Mixer totals since start, rooms already closed included. */
  mixerTotals(): { inputUnderruns: number; videoFrames: number };
  epoch(): number;
  isProtected(): boolean;
  /** Null without a replication server. */
  replication(): { lagFrames: number; lastAckRttMs: number | null; totalBytesSent: number } | null;
  /** How this process became the primary; null when it started as one. */
  failover(): { detectionMs: number | null; promotionMs: number } | null;
  /** Signaling requests refused since start, by error code. */
  signalingRefusals(): ReadonlyMap<string, number>;
}

/** A gauge that reads its value when scraped; unknown (null) keeps the last known value. */
function scrapedGauge(registry: client.Registry, name: string, help: string, read: () => number | null): void {
  new client.Gauge({
    name,
    help,
    registers: [registry],
    collect(this: client.Gauge) {
      const value = read();
      if (value !== null) this.set(value);
    },
  });
}

/**
 * Prometheus metrics of one MCU process (own registry, so several MCUs can live in one test
 * process). Nothing is pushed into them: each metric reads the live state when scraped, and
 * running totals are counters set to the source's total (a counter restarts with the process).
 */
export class McuMetrics {
  readonly registry = new client.Registry();

  constructor(source: McuMetricsSource) {
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: () => number | null): void => scrapedGauge(this.registry, name, help, read);
    const counter = (name: string, help: string, read: () => number): void => {
      new client.Counter({
        name,
        help,
        registers,
        collect(this: client.Counter) {
          this.reset();
          this.inc(read());
        },
      });
    };

    gauge('mcu_rooms', 'Rooms hosted', () => source.occupancy().rooms);
    gauge('mcu_participants', 'Participants in all rooms', () => source.occupancy().participants);
    counter('mcu_mixer_input_underruns_total', 'Participant audio frames missing when a mix was built, closed rooms included', () => source.mixerTotals().inputUnderruns);
    counter('mcu_mixer_video_frames_total', 'Composite video frames produced, closed rooms included', () => source.mixerTotals().videoFrames);
    new client.Counter({
      name: 'mcu_signaling_errors_total',
      help: 'Signaling requests refused, by error code',
      labelNames: ['code'],
      registers,
      collect(this: client.Counter<'code'>) {
        this.reset();
        for (const [code, count] of source.signalingRefusals()) this.inc({ code }, count);
      },
    });
    gauge('mcu_epoch', 'Epoch of this MCU (raised by every promotion)', () => source.epoch());
    gauge('mcu_protected', '1 when a synced hot standby protects this primary', () => (source.isProtected() ? 1 : 0));
    // A process is promoted at most once: it starts as a standby, never goes back to being one.
    counter('mcu_failovers_total', 'Promotions of a standby into this primary', () => (source.failover() ? 1 : 0));
    gauge(
      'mcu_failover_detection_ms',
      'Last failover: from the last sign of life of the old primary to the verdict that it is dead',
      () => source.failover()?.detectionMs ?? null,
    );
    gauge('mcu_failover_promotion_ms', 'Last failover: from the verdict to serving as the primary', () => source.failover()?.promotionMs ?? null);
    gauge('mcu_replication_lag_frames', 'Replication frames sent but not yet acknowledged', () => source.replication()?.lagFrames ?? null);
    gauge('mcu_replication_ack_rtt_ms', 'Send-to-acknowledgement time of the latest replication frame', () => source.replication()?.lastAckRttMs ?? null);
    counter('mcu_replication_bytes_sent_total', 'Replication bytes sent to standbys since start', () => source.replication()?.totalBytesSent ?? 0);
    client.collectDefaultMetrics({ register: this.registry });
  }
}

/** What a standby's /metrics reads from it, at each scrape (standby/src/standby.ts). */
export interface StandbyMetricsSource {
  /** A checkpoint and the primary's heartbeats: a death of the primary would be taken over. */
  ready(): boolean;
  /** Epoch of the checkpoint (the primary's). */
  epoch(): number;
  /** Sequence number of the last replication frame applied. */
  checkpointSeq(): number;
  checkpointParticipants(): number;
  sparesConnected(): number;
  /** ms since the last heartbeat heard, null before the first. */
  heartbeatAgeMs(): number | null;
}

/** Prometheus metrics of a standby process, read at scrape time like McuMetrics; its own registry. */
export class StandbyMetrics {
  readonly registry = new client.Registry();

  constructor(source: StandbyMetricsSource) {
    const gauge = (name: string, help: string, read: () => number | null): void => scrapedGauge(this.registry, name, help, read);
    gauge('mcu_standby_ready', '1 while this standby holds a checkpoint and hears the primary (it would take over)', () => (source.ready() ? 1 : 0));
    gauge('mcu_epoch', 'Epoch of the checkpoint this standby follows', () => source.epoch());
    gauge('mcu_standby_checkpoint_seq', 'Sequence number of the last replication frame applied to the checkpoint', () => source.checkpointSeq());
    gauge('mcu_standby_checkpoint_participants', 'Participants in the checkpoint', () => source.checkpointParticipants());
    gauge('mcu_standby_spares_connected', 'Warm spare media paths connected to pages', () => source.sparesConnected());
    gauge('mcu_standby_heartbeat_age_ms', 'Time since the last heartbeat of the primary', () => source.heartbeatAgeMs());
    client.collectDefaultMetrics({ register: this.registry });
  }
}
