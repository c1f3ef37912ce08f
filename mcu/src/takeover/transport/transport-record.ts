/**
 * What the standby needs to rebuild one client's signaling TCP connection, as the
 * primary records it (the connection-level takeover, design notes sections 3, 4, 9).
 * Sequence numbers are unsigned 32-bit; offsets count bytes from the first data byte
 * of each direction (client ISN + 1, server ISN + 1). Replicated in 'transport' blobs
 * (mcu/src/wire/blobs.ts, which validates it).
 */

export interface TransportRecord {
  /** Primary-assigned id of this connection, also carried by its output-log frames. */
  connId: string;
  local: { address: string; port: number };
  remote: { address: string; port: number };
  clientIsn: number;
  serverIsn: number;
  /** Negotiated options (TCP_INFO at accept; the standby's capture of the SYN is preferred when it has it). */
  mss: number;
  sndWscale: number;
  rcvWscale: number;
  sack: boolean;
  timestamps: boolean;
  /** Client bytes the application consumed, always at a WebSocket frame boundary. */
  consumedInput: number;
  /** Server bytes committed to the output log (acknowledged by the standby before the kernel got them). */
  committedOutput: number;
  /** Epoch-ms of the accept. */
  acceptedAt: number;
}

/** One chunk of a connection's output log: the bytes at [offset, offset + data.length). Sent as a binary frame (mcu/src/wire/output-chunk.ts). */
export interface OutputLogChunk {
  connId: string;
  offset: number;
  data: Buffer;
}
