import { z } from 'zod';
import { InvalidMessageError, MessageTooLargeError } from '../core/errors.ts';
import type {
  ClientAnswer,
  ClientOffer,
  EdgeConnectRequest,
  EdgeConsumeRequest,
  EdgeDtlsParameters,
  EdgeProduceRequest,
  EdgeResumeRequest,
  EdgeRtpCapabilities,
  EdgeRtpParameters,
  EdgeTransportRequest,
  JoinRequest,
  MuteRequest,
  Result,
  SpareActivated,
  SpareAnswer,
} from './protocol.ts';

/**
 * Runtime validation of everything a client sends. A message that does not fit gets an
 * InvalidMessageError naming the field, never an exception deeper in the MCU.
 */

const roomName = z
  .string()
  .min(1, 'room name is empty')
  .max(64, 'room name is longer than 64 characters')
  .regex(/^[A-Za-z0-9_.-]+$/, 'room name may only contain letters, digits, "_", "." and "-"');

const displayName = z
  .string()
  .transform((s) => s.trim())
  .pipe(z.string().min(1, 'display name is empty').max(64, 'display name is longer than 64 characters'));

const sdp = z.string().min(1, 'sdp is empty').startsWith('v=0', 'sdp does not start with "v=0"');

const joinSchema: z.ZodType<JoinRequest, z.ZodTypeDef, unknown> = z
  .object({
    room: roomName,
    name: displayName,
    audioMuted: z.boolean().optional(),
    videoMuted: z.boolean().optional(),
    resume: z
      .object({ participantId: z.string().min(1).max(64), resumeToken: z.string().min(1).max(128) })
      .strict()
      .optional(),
  })
  .strict();

const muteSchema: z.ZodType<MuteRequest, z.ZodTypeDef, unknown> = z
  .object({ kind: z.enum(['audio', 'video']), muted: z.boolean() })
  .strict();

const offerSchema: z.ZodType<ClientOffer, z.ZodTypeDef, unknown> = z.object({ sdp, fresh: z.boolean().optional() }).strict();

const answerSchema: z.ZodType<ClientAnswer, z.ZodTypeDef, unknown> = z
  .object({ sdp, offerId: z.number().int().nonnegative() })
  .strict();

const pathId = z.string().min(1).max(128);

// ---- mediasoup plane (edge-*): the structure of mediasoup's JSON, bounded; mediasoup checks the
// meaning (codecs it knows, payload types, SSRCs) when it uses them.

const mediaKind = z.enum(['audio', 'video']);
const shortText = (max = 128) => z.string().min(1).max(max);
const edgeId = z.string().uuid('expected a mediasoup id (a UUID)');
const uint = (max: number) => z.number().int().min(0).max(max);
const codecParameters = z.record(z.string().max(64), z.union([z.string().max(256), z.number().finite()])).refine((r) => Object.keys(r).length <= 32, 'at most 32 codec parameters');
const rtcpFeedback = z.array(z.object({ type: shortText(32), parameter: z.string().max(32).optional() }).strict()).max(16);

const rtpCapabilitiesSchema: z.ZodType<EdgeRtpCapabilities, z.ZodTypeDef, unknown> = z
  .object({
    codecs: z
      .array(
        z
          .object({
            kind: mediaKind,
            mimeType: shortText(64),
            preferredPayloadType: uint(127).optional(),
            clockRate: uint(1_000_000),
            channels: uint(8).optional(),
            parameters: codecParameters.optional(),
            rtcpFeedback: rtcpFeedback.optional(),
          })
          .strict(),
      )
      .max(64)
      .optional(),
    headerExtensions: z
      .array(
        z
          .object({
            kind: mediaKind,
            uri: shortText(256),
            preferredId: uint(255),
            preferredEncrypt: z.boolean().optional(),
            direction: z.enum(['sendrecv', 'sendonly', 'recvonly', 'inactive']).optional(),
          })
          .strict(),
      )
      .max(64)
      .optional(),
  })
  .strict();

const priority = z.enum(['very-low', 'low', 'medium', 'high']);

const rtpParametersSchema: z.ZodType<EdgeRtpParameters, z.ZodTypeDef, unknown> = z
  .object({
    mid: z.string().max(32).optional(),
    codecs: z
      .array(
        z
          .object({
            mimeType: shortText(64),
            payloadType: uint(127),
            clockRate: uint(1_000_000),
            channels: uint(8).optional(),
            parameters: codecParameters.optional(),
            rtcpFeedback: rtcpFeedback.optional(),
          })
          .strict(),
      )
      .min(1, 'expected at least one codec')
      .max(16),
    headerExtensions: z
      .array(z.object({ uri: shortText(256), id: uint(255), encrypt: z.boolean().optional(), parameters: codecParameters.optional() }).strict())
      .max(32)
      .optional(),
    encodings: z
      .array(
        z
          .object({
            ssrc: uint(0xffffffff).optional(),
            rid: z.string().max(32).optional(),
            codecPayloadType: uint(127).optional(),
            rtx: z.object({ ssrc: uint(0xffffffff) }).strict().optional(),
            dtx: z.boolean().optional(),
            scalabilityMode: z.string().max(16).optional(),
            scaleResolutionDownBy: z.number().finite().min(1).max(64).optional(),
            maxBitrate: uint(100_000_000).optional(),
            maxFramerate: z.number().finite().min(0).max(240).optional(),
            adaptivePtime: z.boolean().optional(),
            priority: priority.optional(),
            networkPriority: priority.optional(),
          })
          .strict(),
      )
      .max(8)
      .optional(),
    rtcp: z.object({ cname: z.string().max(256).optional(), reducedSize: z.boolean().optional(), mux: z.boolean().optional() }).strict().optional(),
  })
  .strict();

const dtlsParametersSchema: z.ZodType<EdgeDtlsParameters, z.ZodTypeDef, unknown> = z
  .object({
    role: z.enum(['auto', 'client', 'server']).optional(),
    fingerprints: z
      .array(z.object({ algorithm: shortText(16), value: shortText(256) }).strict())
      .min(1, 'expected at least one fingerprint')
      .max(8),
  })
  .strict();

const edgeTransportSchema: z.ZodType<EdgeTransportRequest, z.ZodTypeDef, unknown> = z.object({ direction: z.enum(['send', 'recv']) }).strict();
const edgeConnectSchema: z.ZodType<EdgeConnectRequest, z.ZodTypeDef, unknown> = z.object({ transportId: edgeId, dtlsParameters: dtlsParametersSchema }).strict();
const edgeProduceSchema: z.ZodType<EdgeProduceRequest, z.ZodTypeDef, unknown> = z
  .object({ transportId: edgeId, kind: mediaKind, rtpParameters: rtpParametersSchema })
  .strict();
const edgeConsumeSchema: z.ZodType<EdgeConsumeRequest, z.ZodTypeDef, unknown> = z.object({ rtpCapabilities: rtpCapabilitiesSchema }).strict();
const edgeResumeSchema: z.ZodType<EdgeResumeRequest, z.ZodTypeDef, unknown> = z.object({ consumerIds: z.array(edgeId).min(1).max(8) }).strict();

const wireErrorSchema = z.object({ code: z.string().max(64), message: z.string().max(1024) }).strict();

const failedReply = z.object({ ok: z.literal(false), error: wireErrorSchema }).strict();

// Replies of the page to server requests with an acknowledgement: `{ ok: true, ... }` or `{ ok: false, error }`.
const spareAnswerReply: z.ZodType<Result<SpareAnswer>, z.ZodTypeDef, unknown> = z.union([
  failedReply,
  z.object({ ok: z.literal(true), pathId, sdp }).strict(),
]);

const spareActivatedReply: z.ZodType<Result<SpareActivated>, z.ZodTypeDef, unknown> = z.union([
  failedReply,
  z.object({ ok: z.literal(true), pathId, trigger: z.enum(['silence', 'server', 'spare-media']), primarySilentMs: z.number().finite().nonnegative() }).strict(),
]);

function parse<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, event: string, payload: unknown): T {
  const result = schema.safeParse(payload);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` at "${issue.path.join('.')}"` : '';
  throw new InvalidMessageError(`"${event}" payload is invalid${where}: ${issue?.message ?? 'unknown problem'}`);
}

export const validate = {
  join: (p: unknown): JoinRequest => parse(joinSchema, 'join', p),
  mute: (p: unknown): MuteRequest => parse(muteSchema, 'mute', p),
  offer: (p: unknown): ClientOffer => parse(offerSchema, 'offer', p),
  answer: (p: unknown): ClientAnswer => parse(answerSchema, 'answer', p),
  edgeTransport: (p: unknown): EdgeTransportRequest => parse(edgeTransportSchema, 'edge-transport', p),
  edgeConnect: (p: unknown): EdgeConnectRequest => parse(edgeConnectSchema, 'edge-connect', p),
  edgeProduce: (p: unknown): EdgeProduceRequest => parse(edgeProduceSchema, 'edge-produce', p),
  edgeConsume: (p: unknown): EdgeConsumeRequest => parse(edgeConsumeSchema, 'edge-consume', p),
  edgeResume: (p: unknown): EdgeResumeRequest => parse(edgeResumeSchema, 'edge-resume', p),
  /** The page's reply to `spare-offer`. */
  spareAnswerReply: (p: unknown): Result<SpareAnswer> => parse(spareAnswerReply, 'spare-offer reply', p),
  /** The page's reply to `spare-activate`. */
  spareActivatedReply: (p: unknown): Result<SpareActivated> => parse(spareActivatedReply, 'spare-activate reply', p),
};

/** Size of a message as the client sent it (JSON bytes), checked before anything else. */
export function checkMessageSize(args: readonly unknown[], limit: number): void {
  let size = 0;
  for (const arg of args) {
    if (typeof arg === 'function') continue;
    if (typeof arg === 'string') size += Buffer.byteLength(arg);
    else if (Buffer.isBuffer(arg) || arg instanceof ArrayBuffer || ArrayBuffer.isView(arg)) size += arg.byteLength;
    else size += Buffer.byteLength(jsonOf(arg));
    if (size > limit) throw new MessageTooLargeError(size, limit);
  }
}

/**
 * JSON text of a payload the socket.io parser accepted. A few kilobytes of nested arrays
 * (`[[[[...]]]]`, some thousand levels) overflow the stack of JSON.stringify: that is the
 * client's mistake, not an internal error.
 */
function jsonOf(arg: unknown): string {
  try {
    return JSON.stringify(arg) ?? '';
  } catch (err) {
    if (err instanceof RangeError) throw new InvalidMessageError('payload is nested too deeply: a signaling message is a flat JSON object');
    throw err;
  }
}
