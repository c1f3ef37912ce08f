/**
 * The signaling protocol: one typed event map shared by the MCU, the standby and the
 * browser client (compile-time checked on both sides). Types only: the runtime
 * validation of what a client sends lives in `validation.ts`, so the browser bundle
 * does not carry the schema library.
 */

export type MediaKind = 'audio' | 'video';

export interface WireError {
  code: string;
  message: string;
}

export type Result<T> = ({ ok: true } & T) | { ok: false; error: WireError };

/** What the MCU's answers carry besides the reply: the epoch of the MCU that answered (it changes when a standby took over) and when it did (wall clock, ms). */
export interface ServedBy {
  epoch: number;
  servedAt: number;
}

export interface RosterEntry {
  id: string;
  name: string;
  audioMuted: boolean;
  videoMuted: boolean;
  joinedAt: number;
  /** False while the participant's signaling connection is gone and it may still resume. */
  connected: boolean;
}

export interface RosterUpdate {
  room: string;
  participants: RosterEntry[];
}

export interface ResumeCredentials {
  participantId: string;
  resumeToken: string;
}

export interface JoinRequest {
  room: string;
  name: string;
  audioMuted?: boolean;
  videoMuted?: boolean;
  /** Present when the client resumes a participant after its signaling connection was lost. */
  resume?: ResumeCredentials;
}

export interface JoinReply {
  participantId: string;
  resumeToken: string;
  room: string;
  roster: RosterEntry[];
  resumed: boolean;
  /** Epoch of the MCU that answered: it changes when a standby took over. */
  epoch: number;
}

export interface SdpMessage {
  sdp: string;
}

export interface ClientOffer extends SdpMessage {
  /** The offer comes from a new browser peer connection (restart fallback): the server starts afresh too. */
  fresh?: boolean;
}

export interface MuteRequest {
  kind: MediaKind;
  muted: boolean;
}

/** Why the server sends an offer: the media path must be rebuilt (a standby took over). */
export type ServerOfferReason = 'restart' | 'failover';

export interface ServerOffer extends SdpMessage {
  reason: ServerOfferReason;
  /** Echoed in the answer so a late answer to an older offer is ignored. */
  offerId: number;
}

export interface ClientAnswer extends SdpMessage {
  offerId: number;
}

export interface SignalingErrorEvent extends WireError {
  /** The client event that caused the error, when there is one. */
  event?: string;
}

/** The MCU tells the page that media is being rebuilt and why. */
export interface MediaStatus {
  state: 'restarting' | 'ready';
  reason?: string;
}

/**
 * A warm spare media path: a second peer connection the standby keeps with this page, ICE and
 * DTLS done in advance, idle until a failover. The standby offers; the primary relays.
 */
export interface SpareOffer extends SdpMessage {
  /** Names this spare path in every later message about it. */
  pathId: string;
  /**
   * The signaling connection survives a failover (takeover mode): the page must not wait for it
   * to drop before switching on the primary path's silence; media on the spare (only a promoted
   * standby sends there) is the proof of a failover.
   */
  signalingSurvives?: boolean;
}

/** The page's answer to a spare offer (the reply to `spare-offer`). */
export interface SpareAnswer extends SdpMessage {
  pathId: string;
}

/**
 * How the page came to switch to its spare path: its primary path fell silent (with the other
 * conditions), the new primary told it, or (takeover mode) media arrived on the spare, which only
 * a promoted standby sends.
 */
export type SpareSwitchTrigger = 'silence' | 'server' | 'spare-media';

/** The new primary tells the page to switch to this spare path now (after its resume). */
export interface SpareActivate {
  pathId: string;
}

/** The page's reply to `spare-activate`: it switched (now or already on its own). */
export interface SpareActivated {
  pathId: string;
  trigger: SpareSwitchTrigger;
  /** How long the old path had been silent when the page switched, ms. */
  primarySilentMs: number;
}

/** The spare path is gone (its standby stopped or failed): the page closes its side. */
export interface SpareClose {
  pathId: string;
  reason: string;
}

export interface ClientToServerEvents {
  join: (req: JoinRequest, ack: (res: Result<JoinReply>) => void) => void;
  leave: (ack: (res: Result<{}>) => void) => void;
  mute: (req: MuteRequest, ack: (res: Result<{}>) => void) => void;
  /** The browser's offer (first negotiation, or a renegotiation it started). */
  offer: (req: ClientOffer, ack: (res: Result<SdpMessage>) => void) => void;
  /** The browser's answer to a server offer. */
  answer: (req: ClientAnswer, ack: (res: Result<{}>) => void) => void;
}

export interface ServerToClientEvents {
  roster: (update: RosterUpdate) => void;
  offer: (offer: ServerOffer) => void;
  'media-status': (status: MediaStatus) => void;
  'signaling-error': (err: SignalingErrorEvent) => void;
  /** A standby offers a warm spare path; the reply carries the page's answer (validated by the MCU). */
  'spare-offer': (offer: SpareOffer, ack: (res: Result<SpareAnswer>) => void) => void;
  /** After a failover onto the spare paths: switch to this one (the reply is validated by the MCU). */
  'spare-activate': (req: SpareActivate, ack: (res: Result<SpareActivated>) => void) => void;
  'spare-close': (req: SpareClose) => void;
}

export type ClientEventName = keyof ClientToServerEvents;

/** What the server sees: the same event names, but every argument is untrusted until validated. */
export type UntrustedClientEvents = {
  [K in ClientEventName]: (...args: unknown[]) => void;
};
