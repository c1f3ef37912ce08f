/**
 * The standby's TLS step at a takeover, for one rebuilt connection (README *Integration*, step
 * 3): from the replicated secrets, the captured client input and the output log, find where the
 * session stands (`trackTlsSession`) and continue it on the rebuilt socket (`TlsContinuation`),
 * or, when it cannot be continued, close the connection cleanly (a FIN: the client sees the end
 * of its connection and reconnects, resuming TLS with its ticket) and say why with a stable
 * code, which the takeover report counts (`TlsTakeoverTally`). Never a stall: every path ends
 * in a continuation or a closed socket.
 */
import { TlsContinuation, type TlsTransport } from './continuation.ts';
import type { TlsCannotContinue, TlsCannotContinueCode } from './errors.ts';
import type { TlsSessionSecrets, TlsSecretsResult } from './secrets.ts';
import { trackTlsSession, type TlsTrackResult } from './sequence-tracker.ts';

/** How long a connection that cannot be continued may take to close after our FIN. */
const REFUSED_LINGER_MS = 5000;

export interface ContinueTlsInput {
  /** The rebuilt TCP connection (TCP_REPAIR). */
  socket: TlsTransport;
  /** The connection's replicated secrets result; null when none came (the handshake had not ended). */
  secrets: TlsSecretsResult | null;
  /** The client's bytes captured from the connection's first byte (ciphertext). */
  capturedInput: Buffer;
  /** Ciphertext offset up to which the primary consumed the input (a record boundary, the tap's inputBoundary). */
  consumedInput: number;
  /** The output log from the connection's first byte: whole records (output commit). */
  outputLog: Buffer;
}

export type ContinueTlsResult = { ok: true; continuation: TlsContinuation; tracked: TlsTrackResult & { ok: true } } | TlsCannotContinue;

/** Continues the session on `socket`, or ends `socket` cleanly and returns why not. */
export function continueTlsConnection(input: ContinueTlsInput): ContinueTlsResult {
  const refuse = (why: ContinueTlsResult & { ok: false }): ContinueTlsResult => {
    const socket = input.socket;
    // A FIN, not a reset: the client reads the end of the stream and reconnects. Its input is
    // read and dropped, so its own FIN is seen and the socket closes; bounded all the same.
    socket.on('error', () => undefined);
    socket.resume();
    socket.end();
    const linger = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
    linger.unref();
    socket.once('close', () => clearTimeout(linger));
    return why;
  };
  if (input.secrets === null) {
    return refuse({ ok: false, code: 'TLS_SECRETS_MISSING', detail: 'no tls-secrets blob replicated for this connection (its handshake had not ended)' });
  }
  if (!input.secrets.ok) return refuse(input.secrets);
  const secrets: TlsSessionSecrets = input.secrets.secrets;
  const tracked = trackTlsSession({
    secrets,
    client: { bytes: input.capturedInput, until: input.consumedInput, partialTail: 'carry' },
    server: { bytes: input.outputLog },
  });
  if (!tracked.ok) return refuse(tracked);
  const continuation = new TlsContinuation(input.socket, tracked.state, {
    head: input.capturedInput.subarray(tracked.client.boundary),
    inputOffset: tracked.client.boundary,
  });
  return { ok: true, continuation, tracked };
}

/** Connections continued and not continued at one takeover, by stable code (for the takeover report). */
export class TlsTakeoverTally {
  continued = 0;
  readonly notContinued: Partial<Record<TlsCannotContinueCode, number>> = {};

  count(result: ContinueTlsResult): void {
    if (result.ok) this.continued++;
    else this.notContinued[result.code] = (this.notContinued[result.code] ?? 0) + 1;
  }

  toJSON(): { continued: number; notContinued: Partial<Record<TlsCannotContinueCode, number>> } {
    return { continued: this.continued, notContinued: { ...this.notContinued } };
  }
}
