/**
 * Continuing a TLS 1.3 session on the standby (issue 11 item 2), one import: the primary's
 * secret capture (secrets.ts), the tracker that finds where each direction stands
 * (sequence-tracker.ts), the record layer (record-layer.ts, record.ts, key-schedule.ts) and the
 * plaintext Duplex over the rebuilt socket (continuation.ts). See README.md beside it.
 */
export * from './errors.ts';
export * from './key-schedule.ts';
export * from './record.ts';
export * from './record-layer.ts';
export * from './secrets.ts';
export * from './sequence-tracker.ts';
export * from './continuation.ts';
export * from './record-tap.ts';
export * from './tapped-connection.ts';
export * from './standby-continuation.ts';
