import { ConfigError } from './errors.ts';

/** Every tunable of an MCU process. Each is read from the environment variable named in its comment. */
export interface McuConfig {
  /** HTTP + signaling port (PORT, default 3000). */
  port: number;
  /** Address to listen on (HOST, default 0.0.0.0). */
  host: string;
  /** Most participants in one room (MCU_MAX_PARTICIPANTS_PER_ROOM, default 16). */
  maxParticipantsPerRoom: number;
  /** Most rooms hosted at once (MCU_MAX_ROOMS, default 50). */
  maxRooms: number;
  /** Largest accepted signaling message, in bytes of JSON (MCU_MAX_MESSAGE_BYTES, default 65536). */
  maxMessageBytes: number;
  /** Composite video size and rate (MCU_VIDEO_WIDTH/HEIGHT/FPS, default 640x480 at 15). */
  video: { width: number; height: number; fps: number };
  /** How long a participant whose signaling connection dropped may resume (MCU_RESUME_GRACE_MS, default 15000). */
  resumeGraceMs: number;
  /** Addresses whose ICE candidates are offered to browsers, empty = all (MCU_ICE_ADDRESSES, comma separated). */
  iceAddresses: string[];
  /** Longest wait for ICE gathering before answering anyway (MCU_ICE_GATHER_TIMEOUT_MS, default 2000). */
  iceGatherTimeoutMs: number;
  /** Replication to a hot standby; null (no MCU_REPLICATION_SECRET) runs unprotected. */
  replication: ReplicationConfig | null;
  /**
   * Connection-level takeover (MCU_TAKEOVER=1, default off): signaling connections are accepted
   * through the TransportAcceptor, their output committed to the standby and their socket.io
   * sessions recorded, so a standby can rebuild them in place. Off: clients reconnect on failover.
   */
  takeover?: boolean;
  /**
   * Warm spare media paths (MCU_SPARE_PATHS, default on; `0` turns them off): the standby keeps a
   * second, connected, idle peer connection with every page, so a failover needs no media handshake.
   */
  sparePaths?: boolean;
  /**
   * Addresses a standby offers its spare paths' ICE candidates on (MCU_SPARE_ICE_ADDRESSES, comma
   * separated; default all). Not MCU_ICE_ADDRESSES: a spare path runs from the standby's own host,
   * never over the service address (in takeover mode the VIP is not on the standby host yet).
   */
  spareIceAddresses?: string[];
}

export interface ReplicationConfig {
  /** Address the primary accepts its standby on (MCU_REPLICATION_HOST, default 127.0.0.1). */
  host: string;
  /** Port the primary accepts its standby on (MCU_REPLICATION_PORT, default PORT + 1). */
  port: number;
  /** Shared secret authenticating every frame (MCU_REPLICATION_SECRET, at least 16 characters). */
  secret: string;
  /** Heartbeat period both ways (MCU_HEARTBEAT_MS, default 10). */
  heartbeatMs: number;
  /** Heartbeats missed before the primary is declared dead (MCU_MISSED_HEARTBEATS, default 3). */
  missedHeartbeats: number;
  /** Longest time a promoting standby keeps trying to bind the service ports (MCU_BIND_RETRY_MS, default 5000). */
  bindRetryMs: number;
}

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name}=${raw} is invalid: expected an integer in [${min}, ${max}]`);
  }
  return value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<McuConfig> = {}): McuConfig {
  const config: McuConfig = {
    port: intFromEnv(env, 'PORT', 3000, 0, 65535),
    host: env.HOST && env.HOST !== '' ? env.HOST : '0.0.0.0',
    maxParticipantsPerRoom: intFromEnv(env, 'MCU_MAX_PARTICIPANTS_PER_ROOM', 16, 1, 64),
    maxRooms: intFromEnv(env, 'MCU_MAX_ROOMS', 50, 1, 10000),
    maxMessageBytes: intFromEnv(env, 'MCU_MAX_MESSAGE_BYTES', 65536, 1024, 16 * 1024 * 1024),
    video: {
      width: intFromEnv(env, 'MCU_VIDEO_WIDTH', 640, 64, 3840),
      height: intFromEnv(env, 'MCU_VIDEO_HEIGHT', 480, 64, 2160),
      fps: intFromEnv(env, 'MCU_VIDEO_FPS', 15, 1, 60),
    },
    resumeGraceMs: intFromEnv(env, 'MCU_RESUME_GRACE_MS', 15000, 0, 600000),
    iceAddresses: (env.MCU_ICE_ADDRESSES ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''),
    iceGatherTimeoutMs: intFromEnv(env, 'MCU_ICE_GATHER_TIMEOUT_MS', 2000, 100, 30000),
    replication: null,
    takeover: env.MCU_TAKEOVER === '1' || env.MCU_TAKEOVER === 'true',
    sparePaths: !(env.MCU_SPARE_PATHS === '0' || env.MCU_SPARE_PATHS === 'false'),
    spareIceAddresses: (env.MCU_SPARE_ICE_ADDRESSES ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''),
    ...overrides,
  };
  const secret = env.MCU_REPLICATION_SECRET;
  if (overrides.replication === undefined && secret !== undefined && secret !== '') {
    if (secret.length < 16) throw new ConfigError('MCU_REPLICATION_SECRET must be at least 16 characters long');
    const defaultPort = config.port === 0 ? 0 : config.port + 1;
    config.replication = {
      host: env.MCU_REPLICATION_HOST && env.MCU_REPLICATION_HOST !== '' ? env.MCU_REPLICATION_HOST : '127.0.0.1',
      port: intFromEnv(env, 'MCU_REPLICATION_PORT', defaultPort, 0, 65535),
      secret,
      heartbeatMs: intFromEnv(env, 'MCU_HEARTBEAT_MS', 10, 1, 10000),
      missedHeartbeats: intFromEnv(env, 'MCU_MISSED_HEARTBEATS', 3, 1, 1000),
      bindRetryMs: intFromEnv(env, 'MCU_BIND_RETRY_MS', 5000, 0, 60000),
    };
  }
  if (config.video.width % 2 !== 0 || config.video.height % 2 !== 0) {
    throw new ConfigError(`video size ${config.video.width}x${config.video.height} must be even (I420)`);
  }
  return config;
}
