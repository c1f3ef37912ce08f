import client from 'prom-client';

/** Prometheus metrics of one MCU process (own registry, so several MCUs can live in one test process). */
export class McuMetrics {
  readonly registry = new client.Registry();
  readonly rooms: client.Gauge;
  readonly participants: client.Gauge;
  readonly mixerAudioUnderruns: client.Gauge;
  readonly mixerVideoFrames: client.Gauge;
  readonly signalingErrors: client.Counter<'code'>;

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
    client.collectDefaultMetrics({ register: this.registry });
  }
}
