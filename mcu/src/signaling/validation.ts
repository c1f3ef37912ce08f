import { z } from 'zod';
import { InvalidMessageError, MessageTooLargeError } from '../core/errors.ts';
import type { ClientAnswer, ClientOffer, JoinRequest, MuteRequest, Result, SpareActivated, SpareAnswer } from './protocol.ts';

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
