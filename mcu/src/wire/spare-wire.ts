import { z } from 'zod';
import { ReplicationMalformedError } from '../core/errors.ts';
import type { NegotiatedMedia } from '../conference/session-state.ts';

/**
 * The warm spare path relay over the replication channel. The standby offers a spare peer
 * connection per participant; the primary hands the offer to the page over socket.io and the
 * page's answer back. Blob kinds and their payloads, validated on receipt like every frame.
 *
 *   standby -> primary: spare-offer, spare-state
 *   primary -> standby: spare-answer, spare-failed
 */

/** Where one spare path is, as the standby that owns it reports it. */
export type SparePathState = 'offering' | 'answered' | 'connected' | 'failed' | 'closed';

export interface SpareOfferBlob {
  participantId: string;
  pathId: string;
  sdp: string;
}
export interface SpareStateBlob {
  participantId: string;
  pathId: string;
  state: SparePathState;
  detail?: string;
}
export interface SpareAnswerBlob {
  participantId: string;
  pathId: string;
  sdp: string;
}
export interface SpareFailedBlob {
  participantId: string;
  pathId: string;
  reason: string;
}

export const SPARE_BLOB = {
  offer: 'spare-offer',
  state: 'spare-state',
  answer: 'spare-answer',
  failed: 'spare-failed',
} as const;

/** A spare path the promoted standby turns into a participant's media session. */
export interface SpareHandoff {
  pathId: string;
  /** The standby's connected peer connection (wrtc), its transceivers in `mlines` order. */
  pc: RTCPeerConnection;
  /** The spare's m-lines (mids of its own offer), recorded as the participant's media once the page switched. */
  mlines: NegotiatedMedia['mlines'];
  /** The page's answer SDP. */
  remoteSdp: string;
}

const id = z.string().min(1).max(256);
const sdp = z.string().min(1).max(256 * 1024).startsWith('v=0', 'sdp does not start with "v=0"');

const schemas = {
  offer: z.object({ participantId: id, pathId: id, sdp }).strict(),
  state: z
    .object({
      participantId: id,
      pathId: id,
      state: z.enum(['offering', 'answered', 'connected', 'failed', 'closed']),
      detail: z.string().max(1024).optional(),
    })
    .strict(),
  answer: z.object({ participantId: id, pathId: id, sdp }).strict(),
  failed: z.object({ participantId: id, pathId: id, reason: z.string().max(1024) }).strict(),
};

function parse<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, kind: string, data: unknown): T {
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new ReplicationMalformedError(`invalid "${kind}" blob at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'unknown problem'}`);
}

/** Validators; each throws ReplicationMalformedError. */
export const parseSpare = {
  offer: (data: unknown): SpareOfferBlob => parse(schemas.offer, SPARE_BLOB.offer, data),
  state: (data: unknown): SpareStateBlob => parse(schemas.state, SPARE_BLOB.state, data),
  answer: (data: unknown): SpareAnswerBlob => parse(schemas.answer, SPARE_BLOB.answer, data),
  failed: (data: unknown): SpareFailedBlob => parse(schemas.failed, SPARE_BLOB.failed, data),
};
