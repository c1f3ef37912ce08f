/**
 * One room on the mediasoup plane: its router, the room mixer's endpoint on it (mixer-endpoint.ts)
 * and one EdgePeer per participant. What a participant produces is consumed by the mixer; what
 * it consumes is the room's one grid and its own N-1 mix, both produced by the mixer.
 */
import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import { EdgeRequestFailedError } from '../../core/errors.ts';
import { safeEmit } from '../../core/events.ts';
import type { Logger } from '../../core/logger.ts';
import type { MixerMember, RoomMixer } from '../room-mixer.ts';
import { EdgePeer, type EdgeOutputs } from './edge-peer.ts';
import type { MediaEdge } from './media-edge.ts';
import { MixerEndpoint } from './mixer-endpoint.ts';

export type RoomEdgeState = 'starting' | 'ready' | 'failed' | 'closed';

export type RoomEdgeEvents = {
  /** The router or the mixer's join failed: the room has no media. */
  failed: [reason: string];
  close: [];
};

interface Started {
  router: ms.Router;
  mixer: MixerEndpoint;
  /** The router's producer id of the room's grid. */
  grid: string;
}

/** A participant as the room edge holds it: its mixer member, its mix being produced, its peer once asked for. */
interface EdgeMember {
  member: MixerMember;
  mix: Promise<string>;
  peer: EdgePeer | null;
}

export class RoomEdge extends EventEmitter<RoomEdgeEvents> {
  readonly room: string;
  readonly #log: Logger;
  readonly #listenIp: string;
  readonly #started: Promise<Started>;
  readonly #members = new Map<string, EdgeMember>();
  #state: RoomEdgeState = 'starting';
  #resources: Started | null = null;

  constructor(room: string, edge: MediaEdge, mixer: RoomMixer, log: Logger) {
    super();
    this.room = room;
    this.#log = log;
    this.#listenIp = edge.config.listenIp;
    this.#started = this.#start(edge, mixer);
    // Failures reach every request that awaits it; this keeps an unawaited start from being unhandled.
    this.#started.catch(() => undefined);
  }

  get state(): RoomEdgeState {
    return this.#state;
  }

  async #start(edge: MediaEdge, mixer: RoomMixer): Promise<Started> {
    let router: ms.Router | null = null;
    let endpoint: MixerEndpoint | null = null;
    try {
      router = await edge.createRouter(this.room);
      endpoint = await MixerEndpoint.create(router, this.#log);
      endpoint.on('failed', (reason) => this.#fail(reason));
      const grid = await endpoint.produceGrid(mixer.gridTrack());
      if (this.state === 'closed') throw new Error('the room closed while its router started');
      this.#resources = { router, mixer: endpoint, grid };
      this.#state = 'ready';
      this.#log.info('room router ready', { router: router.id, grid });
      return this.#resources;
    } catch (err) {
      endpoint?.close();
      router?.close();
      const reason = err instanceof Error ? err.message : String(err);
      if (this.state !== 'closed') this.#fail(`the room's router did not start: ${reason}`);
      throw new EdgeRequestFailedError('edge', `the room's media router is not available: ${reason}`, err);
    }
  }

  #fail(reason: string): void {
    if (this.#state === 'failed' || this.#state === 'closed') return;
    this.#state = 'failed';
    this.#log.error('room media edge failed', { reason });
    safeEmit(this, this.#log, 'failed', reason);
  }

  /** A participant joined: the mixer starts producing its N-1 mix at once, so its page finds it when it consumes. */
  addMember(member: MixerMember): void {
    if (this.#members.has(member.id) || this.#state === 'closed') return;
    const mix = this.#started.then(({ mixer }) => mixer.produceMix(member.id, member.audioTrack));
    mix.catch((err: unknown) => this.#log.warn('the mix of a participant was not produced', { participant: member.id, error: (err as Error)?.message ?? String(err) }));
    this.#members.set(member.id, { member, mix, peer: null });
  }

  /** The participant's side of the router (created on its first request). */
  async peer(id: string): Promise<EdgePeer> {
    const entry = this.#members.get(id);
    if (!entry) throw new EdgeRequestFailedError('edge', 'the participant is not in this room');
    const { router, mixer, grid } = await this.#started;
    if (entry.peer && !entry.peer.closed) return entry.peer;
    if (this.#members.get(id) !== entry) throw new EdgeRequestFailedError('edge', 'the participant left');
    const outputs = async (): Promise<EdgeOutputs> => ({ grid, mix: await entry.mix });
    const peer = new EdgePeer({
      id,
      router,
      listenIp: this.#listenIp,
      log: this.#log.child({ participant: id }),
      outputs,
      produced: (producer) => {
        void mixer.consume(entry.member, producer).catch((err: unknown) =>
          this.#log.warn('the mixer could not consume a producer', { participant: id, kind: producer.kind, error: (err as Error)?.message ?? String(err) }),
        );
      },
    });
    entry.peer = peer;
    return peer;
  }

  /** A participant left: its transports close, and the mixer drops its inputs and its mix. */
  removeMember(id: string): void {
    const entry = this.#members.get(id);
    if (!entry) return;
    this.#members.delete(id);
    entry.peer?.close();
    this.#resources?.mixer.removeMember(id);
    // Started later than the leave: the mixer closes what it produces for a removed member.
    if (!this.#resources) void this.#started.then(({ mixer }) => mixer.removeMember(id), () => undefined);
  }

  /** Idempotent: closes every participant's transports, the mixer's endpoint and the router. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    for (const id of [...this.#members.keys()]) this.removeMember(id);
    this.#resources?.mixer.close();
    this.#resources?.router.close();
    this.#resources = null;
    this.emit('close');
    this.removeAllListeners();
  }
}
