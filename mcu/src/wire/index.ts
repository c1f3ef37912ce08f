/**
 * The replication wire, one import for its producers and consumers:
 *
 * - frame-codec.ts: the authenticated frame (header, payload, MAC) of the replication stream;
 * - messages.ts: the JSON payloads, each message type with its zod schema (parsePrimaryMessage,
 *   parseStandbyMessage), and parsePayload, the one way a payload is validated;
 * - blobs.ts: every blob kind and snapshot extra, with payload types and schemas (parseBlob,
 *   parseSnapshotExtra);
 * - output-chunk.ts: the binary payload (an output-log chunk);
 * - heartbeat-wire.ts: the UDP heartbeat datagram's reference codec (the heartbeat threads use
 *   its native twin, native/addon/heartbeat_wire.cc).
 */
export * from './frame-codec.ts';
export * from './messages.ts';
export * from './blobs.ts';
export * from './output-chunk.ts';
export * from './heartbeat-wire.ts';
