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

/**
 * How the page's media reaches the MCU (the MCU's media.plane): `wrtc`, one peer connection
 * negotiated with `offer`; `mediasoup`, a mediasoup-client device with the `edge-*` requests.
 */
export type MediaPlane = 'wrtc' | 'mediasoup';

export interface JoinReply {
  participantId: string;
  resumeToken: string;
  room: string;
  roster: RosterEntry[];
  resumed: boolean;
  /** Epoch of the MCU that answered: it changes when a standby took over. */
  epoch: number;
  /** Which media requests the page uses. */
  mediaPlane: MediaPlane;
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

// ---- The mediasoup plane's requests (`edge-*`). The shapes are mediasoup's own JSON (RTP
// capabilities and parameters, ICE and DTLS parameters), written out here so that this file
// depends on nothing; mediasoup checks their contents further when it uses them.

export interface EdgeRtcpFeedback {
  type: string;
  parameter?: string;
}

export interface EdgeCodecCapability {
  kind: MediaKind;
  mimeType: string;
  preferredPayloadType?: number;
  clockRate: number;
  channels?: number;
  parameters?: Record<string, string | number>;
  rtcpFeedback?: EdgeRtcpFeedback[];
}

export interface EdgeHeaderExtensionCapability {
  kind: MediaKind;
  uri: string;
  preferredId: number;
  preferredEncrypt?: boolean;
  direction?: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
}

export interface EdgeRtpCapabilities {
  codecs?: EdgeCodecCapability[];
  headerExtensions?: EdgeHeaderExtensionCapability[];
}

export interface EdgeCodecParameters {
  mimeType: string;
  payloadType: number;
  clockRate: number;
  channels?: number;
  parameters?: Record<string, string | number>;
  rtcpFeedback?: EdgeRtcpFeedback[];
}

export interface EdgeRtpParameters {
  mid?: string;
  codecs: EdgeCodecParameters[];
  headerExtensions?: Array<{ uri: string; id: number; encrypt?: boolean; parameters?: Record<string, string | number> }>;
  encodings?: Array<{
    ssrc?: number;
    rid?: string;
    codecPayloadType?: number;
    rtx?: { ssrc: number };
    dtx?: boolean;
    scalabilityMode?: string;
    scaleResolutionDownBy?: number;
    maxBitrate?: number;
    maxFramerate?: number;
    adaptivePtime?: boolean;
    priority?: 'very-low' | 'low' | 'medium' | 'high';
    networkPriority?: 'very-low' | 'low' | 'medium' | 'high';
  }>;
  rtcp?: { cname?: string; reducedSize?: boolean; mux?: boolean };
}

export interface EdgeDtlsParameters {
  role?: 'auto' | 'client' | 'server';
  fingerprints: Array<{ algorithm: string; value: string }>;
}

export type EdgeDirection = 'send' | 'recv';

/** The router's capabilities, which the page's device loads. */
export interface EdgeCapabilities {
  routerRtpCapabilities: EdgeRtpCapabilities;
}

export interface EdgeTransportRequest {
  direction: EdgeDirection;
}

/** A WebRtcTransport the MCU created for the page (one per direction). */
export interface EdgeTransportParams {
  transportId: string;
  iceParameters: { usernameFragment: string; password: string; iceLite?: boolean };
  iceCandidates: Array<{
    foundation: string;
    priority: number;
    address: string;
    ip?: string;
    protocol: 'udp' | 'tcp';
    port: number;
    type: 'host' | 'srflx' | 'prflx' | 'relay';
    tcpType?: 'active' | 'passive' | 'so';
  }>;
  dtlsParameters: EdgeDtlsParameters;
}

export interface EdgeConnectRequest {
  transportId: string;
  dtlsParameters: EdgeDtlsParameters;
}

export interface EdgeProduceRequest {
  transportId: string;
  kind: MediaKind;
  rtpParameters: EdgeRtpParameters;
}

export interface EdgeProduced {
  producerId: string;
}

export interface EdgeConsumeRequest {
  /** The page's device capabilities: what it can receive. */
  rtpCapabilities: EdgeRtpCapabilities;
}

/** What the page receives: the room's grid (one for everyone) and its own N-1 mix. */
export interface EdgeConsumerParams {
  consumerId: string;
  producerId: string;
  kind: MediaKind;
  rtpParameters: EdgeRtpParameters;
  output: 'grid' | 'mix';
}

export interface EdgeConsumed {
  consumers: EdgeConsumerParams[];
}

export interface EdgeResumeRequest {
  consumerIds: string[];
}

export interface ClientToServerEvents {
  join: (req: JoinRequest, ack: (res: Result<JoinReply>) => void) => void;
  leave: (ack: (res: Result<{}>) => void) => void;
  mute: (req: MuteRequest, ack: (res: Result<{}>) => void) => void;
  /** The browser's offer (first negotiation, or a renegotiation it started). */
  offer: (req: ClientOffer, ack: (res: Result<SdpMessage>) => void) => void;
  /** The browser's answer to a server offer. */
  answer: (req: ClientAnswer, ack: (res: Result<{}>) => void) => void;
  /** mediasoup plane: the router's RTP capabilities. */
  'edge-capabilities': (ack: (res: Result<EdgeCapabilities>) => void) => void;
  /** mediasoup plane: a WebRtcTransport for one direction (the page has one of each). */
  'edge-transport': (req: EdgeTransportRequest, ack: (res: Result<EdgeTransportParams>) => void) => void;
  /** mediasoup plane: the page's DTLS parameters of one of its transports. */
  'edge-connect': (req: EdgeConnectRequest, ack: (res: Result<{}>) => void) => void;
  /** mediasoup plane: a producer of the page's audio or video, which the room mixer consumes. */
  'edge-produce': (req: EdgeProduceRequest, ack: (res: Result<EdgeProduced>) => void) => void;
  /** mediasoup plane: consumers (paused) of the grid and of the page's own mix on its receive transport. */
  'edge-consume': (req: EdgeConsumeRequest, ack: (res: Result<EdgeConsumed>) => void) => void;
  /** mediasoup plane: resumes consumers once the page has them. */
  'edge-resume': (req: EdgeResumeRequest, ack: (res: Result<{}>) => void) => void;
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
