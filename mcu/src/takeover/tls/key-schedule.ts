/**
 * The three TLS 1.3 suites this record layer speaks, and the parts of the key schedule
 * (RFC 8446 7.1, 7.2, 7.3) the standby needs: traffic key and IV from a traffic secret, and
 * the next traffic secret after a KeyUpdate. The handshake itself is never redone: the
 * secrets come from the primary's keylog.
 */
import { createHmac } from 'node:crypto';

export const TLS13_SUITES = {
  TLS_AES_128_GCM_SHA256: { code: 0x1301, hash: 'sha256', hashLength: 32, cipher: 'aes-128-gcm', keyLength: 16 },
  TLS_AES_256_GCM_SHA384: { code: 0x1302, hash: 'sha384', hashLength: 48, cipher: 'aes-256-gcm', keyLength: 32 },
  TLS_CHACHA20_POLY1305_SHA256: { code: 0x1303, hash: 'sha256', hashLength: 32, cipher: 'chacha20-poly1305', keyLength: 32 },
} as const;

export type TlsSuiteName = keyof typeof TLS13_SUITES;
export type TlsSuite = (typeof TLS13_SUITES)[TlsSuiteName];

/** All three suites use a 12-byte IV (nonce) and a 16-byte tag. */
export const IV_LENGTH = 12;
export const TAG_LENGTH = 16;

export function isSupportedSuite(name: string): name is TlsSuiteName {
  return Object.prototype.hasOwnProperty.call(TLS13_SUITES, name);
}

/** HKDF-Expand (RFC 5869 2.3); Node's hkdf always extracts first, which TLS 1.3's labels must not. */
export function hkdfExpand(hash: string, prk: Buffer, info: Buffer, length: number): Buffer {
  const blocks: Buffer[] = [];
  let previous = Buffer.alloc(0);
  let total = 0;
  for (let i = 1; total < length; i++) {
    previous = createHmac(hash, prk).update(previous).update(info).update(Buffer.of(i)).digest();
    blocks.push(previous);
    total += previous.length;
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/** HKDF-Expand-Label (RFC 8446 7.1): the label is prefixed with "tls13 ". */
export function hkdfExpandLabel(hash: string, secret: Buffer, label: string, context: Buffer, length: number): Buffer {
  const fullLabel = Buffer.from(`tls13 ${label}`, 'ascii');
  const info = Buffer.concat([Buffer.of(length >> 8, length & 0xff, fullLabel.length), fullLabel, Buffer.of(context.length), context]);
  return hkdfExpand(hash, secret, info, length);
}

export interface TrafficKeys {
  key: Buffer;
  iv: Buffer;
}

/** write_key and write_iv of a traffic secret (RFC 8446 7.3). */
export function trafficKeys(suite: TlsSuiteName, secret: Buffer): TrafficKeys {
  const s = TLS13_SUITES[suite];
  return {
    key: hkdfExpandLabel(s.hash, secret, 'key', Buffer.alloc(0), s.keyLength),
    iv: hkdfExpandLabel(s.hash, secret, 'iv', Buffer.alloc(0), IV_LENGTH),
  };
}

/** application_traffic_secret_N+1 (RFC 8446 7.2), what a KeyUpdate moves a direction to. */
export function nextTrafficSecret(suite: TlsSuiteName, secret: Buffer): Buffer {
  const s = TLS13_SUITES[suite];
  return hkdfExpandLabel(s.hash, secret, 'traffic upd', Buffer.alloc(0), s.hashLength);
}
