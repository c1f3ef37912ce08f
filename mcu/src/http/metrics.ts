import client from 'prom-client';

/** Prometheus metrics of one MCU process (own registry, so several MCUs can live in one test process). */
export class McuMetrics {
  readonly registry = new client.Registry();
  readonly rooms: client.Gauge;
  readonly participants: client.Gauge;
  readonly mixerAudioUnderruns: client.Gauge;
  readonly mixerVideoFrames: client.Gauge;
  readonly signalingErrors: client.Counter<'code'>;
  readonly epoch: client.Gauge;
  readonly protectedGauge: client.Gauge;
  readonly failovers: client.Counter;
  readonly detectionMs: client.Gauge;
  readonly promotionMs: client.Gauge;
  readonly replicationLagFrames: client.Gauge;
  readonly replicationAckRttMs: client.Gauge;
  readonly replicationBytes: client.Gauge;

  constructor() {
    this.rooms = new client.Gauge({ name: 'mcu_rooms', help: 'Rooms hosted', registers: [this.registry] });
    this.participants = new client.Gauge({ name: 'mcu_participants', help: 'Participants in all rooms', registers: [this.registry] });
    this.mixerAudioUnderruns = new client.Gauge({
      name: 'mcu_mixer_input_underruns',
      help: 'Participant audio frames missing when a mix was built, summed over live rooms',
      registers: [this.registry],
    });
    this.mixerVideoFrames = new client.Gauge({
      name: 'mcu_mixer_video_frames',
      help: 'Composite video frames produced, summed over live rooms',
      registers: [this.registry],
    });
    this.signalingErrors = new client.Counter({
      name: 'mcu_signaling_errors_total',
      help: 'Signaling requests refused, by error code',
      labelNames: ['code'],
      registers: [this.registry],
    });
    const r = [this.registry];
    this.epoch = new client.Gauge({ name: 'mcu_epoch', help: 'Epoch of this MCU (raised by every promotion)', registers: r });
    this.protectedGauge = new client.Gauge({ name: 'mcu_protected', help: '1 when a synced hot standby protects this primary', registers: r });
    this.failovers = new client.Counter({ name: 'mcu_failovers_total', help: 'Promotions of a standby into this primary', registers: r });
    this.detectionMs = new client.Gauge({
      name: 'mcu_failover_detection_ms',
      help: 'Last failover: from the last sign of life of the old primary to the verdict that it is dead',
      registers: r,
    });
    this.promotionMs = new client.Gauge({
      name: 'mcu_failover_promotion_ms',
      help: 'Last failover: from the verdict to serving as the primary',
      registers: r,
    });
    this.replicationLagFrames = new client.Gauge({ name: 'mcu_replication_lag_frames', help: 'Replication frames sent but not yet acknowledged', registers: r });
    this.replicationAckRttMs = new client.Gauge({ name: 'mcu_replication_ack_rtt_ms', help: 'Send-to-acknowledgement time of the latest replication frame', registers: r });
    this.replicationBytes = new client.Gauge({ name: 'mcu_replication_bytes_sent', help: 'Replication bytes sent to standbys since start', registers: r });
    client.collectDefaultMetrics({ register: this.registry });
  }
}
