import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { ConfigError, TlsCredentialsError } from './errors.ts';
import { readSecretFile } from './secret-file.ts';
import { readTlsCredentials, type TlsFiles } from '../http/tls.ts';

/**
 * Every setting of the MCU, the standby and the supervisor, in one schema. A setting comes from
 * its default, then the JSON config file (MCU_CONFIG or `--config <file>`), then its environment
 * variable (set and non-empty), the last one winning. Validated at start: each problem is one line
 * naming the setting and what it expects, and the process exits before binding anything.
 */

/** What the schema alone cannot say about a setting: its environment variable, a computed default, a secret. */
interface SettingMeta {
  env: string;
  /** The default, in words, when it is computed from other settings (the schema leaves it unset). */
  defaultText?: string;
  /** Never shown: redacted in /status and in error messages. */
  secret?: boolean;
}

const settingMeta = new WeakMap<z.ZodTypeAny, SettingMeta>();

function setting<T extends z.ZodTypeAny>(env: string, schema: T, extra: Omit<SettingMeta, 'env'> = {}): T {
  settingMeta.set(schema, { env, ...extra });
  return schema;
}

function group<T extends z.ZodRawShape>(shape: T) {
  const object = z.object(shape).strict();
  // Every setting of a group has a default or is optional, so an absent group is an empty one.
  return object.default({} as z.input<typeof object>);
}

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const port = () => int(0, 65535);
const text = () => z.string().min(1);
const evenSize = (min: number, max: number) => int(min, max).refine((n) => n % 2 === 0, 'expected an even number (I420 frames)');
const interfaceName = () => text().nullable();

/** Shortest replication secret (and admin token) accepted. */
const MIN_SECRET_LENGTH = 16;

const LOG_LEVELS = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] as const;

/** The media planes (media.plane): tests and benchmarks run on each. */
export const MEDIA_PLANES = ['wrtc', 'mediasoup'] as const;

export const settingsSchema = z
  .object({
    server: group({
      /** HTTP + signaling port (default 3000; PORT). */
      port: setting('PORT', port().default(3000)),
      /** Address to listen on (default 0.0.0.0; HOST). */
      host: setting('HOST', text().default('0.0.0.0')),
    }),
    admin: group({
      /** Address of the admin listener serving /status and /metrics; not loopback needs admin.token (default 127.0.0.1; MCU_ADMIN_HOST). */
      host: setting('MCU_ADMIN_HOST', text().default('127.0.0.1')),
      /** Port of the admin listener, 0 = any free port (default server.port + 2; MCU_ADMIN_PORT). */
      port: setting('MCU_ADMIN_PORT', port().optional(), { defaultText: 'server.port + 2 (0 if server.port is 0)' }),
      /** Bearer token /status and /metrics then require on both listeners; the public one serves them only with it (default unset; MCU_ADMIN_TOKEN). */
      token: setting('MCU_ADMIN_TOKEN', z.string().min(MIN_SECRET_LENGTH).optional(), { secret: true, defaultText: 'unset' }),
    }),
    tls: group({
      /** PEM certificate (leaf, then chain) the page, signaling (WSS) and the public /status and /metrics are served with over HTTPS; reloaded on SIGHUP; unset with tls.keyFile: plain HTTP, e.g. behind a TLS-terminating proxy (default unset; MCU_TLS_CERT). */
      certFile: setting('MCU_TLS_CERT', text().optional(), { defaultText: 'unset: plain HTTP' }),
      /** PEM private key of tls.certFile, unencrypted; reloaded with it on SIGHUP (default unset; MCU_TLS_KEY). */
      keyFile: setting('MCU_TLS_KEY', text().optional(), { defaultText: 'unset: plain HTTP' }),
    }),
    limits: group({
      /** Most participants in one room (default 16; MCU_MAX_PARTICIPANTS_PER_ROOM). */
      maxParticipantsPerRoom: setting('MCU_MAX_PARTICIPANTS_PER_ROOM', int(1, 64).default(16)),
      /** Most rooms hosted at once (default 50; MCU_MAX_ROOMS). */
      maxRooms: setting('MCU_MAX_ROOMS', int(1, 10000).default(50)),
      /** Largest accepted signaling message, bytes of JSON (default 65536; MCU_MAX_MESSAGE_BYTES). */
      maxMessageBytes: setting('MCU_MAX_MESSAGE_BYTES', int(1024, 16 * 1024 * 1024).default(65536)),
      /** How long a participant whose signaling connection dropped may resume, ms (default 15000; MCU_RESUME_GRACE_MS). */
      resumeGraceMs: setting('MCU_RESUME_GRACE_MS', int(0, 600000).default(15000)),
      /** Most fresh joins (resumes not counted) from one client address within limits.joinWindowMs, 0 = no limit (default 100; MCU_JOINS_PER_WINDOW). */
      joinsPerWindow: setting('MCU_JOINS_PER_WINDOW', int(0, 10_000).default(100)),
      /** The sliding window of the per-address join limit, ms (default 10000; MCU_JOIN_WINDOW_MS). */
      joinWindowMs: setting('MCU_JOIN_WINDOW_MS', int(100, 3_600_000).default(10000)),
    }),
    video: group({
      /** Composite video width (default 640; MCU_VIDEO_WIDTH). */
      width: setting('MCU_VIDEO_WIDTH', evenSize(64, 3840).default(640)),
      /** Composite video height (default 480; MCU_VIDEO_HEIGHT). */
      height: setting('MCU_VIDEO_HEIGHT', evenSize(64, 2160).default(480)),
      /** Composite frame rate (default 15; MCU_VIDEO_FPS). */
      fps: setting('MCU_VIDEO_FPS', int(1, 60).default(15)),
    }),
    media: group({
      /** Media plane: wrtc = one libwebrtc peer connection per participant (the grid encoded per participant), mediasoup = the pages talk to a mediasoup router and the grid is encoded once per room; mediasoup has no failover yet (default wrtc; MCU_MEDIA_PLANE). */
      plane: setting('MCU_MEDIA_PLANE', z.enum(MEDIA_PLANES).default('wrtc')),
      /** mediasoup plane: the address the pages' WebRtcTransports listen on, UDP (default server.host, 127.0.0.1 when that is 0.0.0.0; MCU_MEDIA_LISTEN_IP). */
      listenIp: setting('MCU_MEDIA_LISTEN_IP', text().optional(), { defaultText: 'server.host (127.0.0.1 when that is 0.0.0.0)' }),
    }),
    ice: group({
      /** Addresses whose ICE candidates are offered to browsers, empty = all (default []; MCU_ICE_ADDRESSES, comma separated). */
      addresses: setting('MCU_ICE_ADDRESSES', z.array(text()).default([])),
      /** Longest wait for ICE gathering before answering anyway, ms (default 2000; MCU_ICE_GATHER_TIMEOUT_MS). */
      gatherTimeoutMs: setting('MCU_ICE_GATHER_TIMEOUT_MS', int(100, 30000).default(2000)),
    }),
    replication: group({
      /** Shared secret authenticating every replication frame; unset runs unprotected (default unset; MCU_REPLICATION_SECRET). */
      secret: setting('MCU_REPLICATION_SECRET', z.string().min(MIN_SECRET_LENGTH).optional(), { secret: true, defaultText: 'unset: no replication' }),
      /** File holding that secret, readable by its owner only; instead of replication.secret, never with it (default unset; MCU_REPLICATION_SECRET_FILE). */
      secretFile: setting('MCU_REPLICATION_SECRET_FILE', text().optional(), { defaultText: 'unset' }),
      /** Address the primary accepts its standby on (default 127.0.0.1; MCU_REPLICATION_HOST). */
      host: setting('MCU_REPLICATION_HOST', text().default('127.0.0.1')),
      /** Port the primary accepts its standby on, TCP and UDP (default server.port + 1; MCU_REPLICATION_PORT). */
      port: setting('MCU_REPLICATION_PORT', port().optional(), { defaultText: 'server.port + 1 (0 if server.port is 0)' }),
      /** Heartbeat period both ways, ms (default 10; MCU_HEARTBEAT_MS). */
      heartbeatMs: setting('MCU_HEARTBEAT_MS', int(1, 10000).default(10)),
      /** Heartbeats missed before the primary is suspected dead (default 3; MCU_MISSED_HEARTBEATS). */
      missedHeartbeats: setting('MCU_MISSED_HEARTBEATS', int(1, 1000).default(3)),
      /** Longest time a promoting standby keeps trying to bind the service ports, ms (default 5000; MCU_BIND_RETRY_MS). */
      bindRetryMs: setting('MCU_BIND_RETRY_MS', int(0, 60000).default(5000)),
    }),
    detection: group({
      /** Standby: a primary host not answering a SYN within this is dead, ms; 0 = no host probe (default 20; MCU_HOST_PROBE_MS). */
      hostProbeMs: setting('MCU_HOST_PROBE_MS', int(0, 10000).default(20)),
      /** Standby: the closed TCP port of the primary's host that probe knocks on (default 9; MCU_HOST_PROBE_PORT). */
      hostProbePort: setting('MCU_HOST_PROBE_PORT', int(1, 65535).default(9)),
    }),
    takeover: group({
      /** Connection-level takeover of the signaling TCP connections, needs root (default false; MCU_TAKEOVER). */
      enabled: setting('MCU_TAKEOVER', z.boolean().default(false)),
      /** Standby, takeover mode: the interface it captures the clients' segments on (default null; MCU_CAPTURE_INTERFACE). */
      captureInterface: setting('MCU_CAPTURE_INTERFACE', interfaceName().default(null)),
      /** The interface carrying the service address: raised by a promoting standby, taken down by a fenced primary (default null; MCU_VIP_INTERFACE). */
      vipInterface: setting('MCU_VIP_INTERFACE', interfaceName().default(null)),
      /** The virtual MAC of the service address's interface, moved with it at a takeover (default 00:00:5e:00:01:01; MCU_VIP_MAC). */
      vipMac: setting('MCU_VIP_MAC', z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i, 'expected a MAC address like 00:00:5e:00:01:01').nullable().default(null), { defaultText: '00:00:5e:00:01:01' }),
      /** Policy-routing table of the service address's replies, so they leave by its interface (default 100; MCU_VIP_ROUTE_TABLE). */
      vipRouteTable: setting('MCU_VIP_ROUTE_TABLE', int(1, 252).default(100)),
      /** Primary, takeover mode: the LAN interface whose carrier tells it was cut off; null = the one holding replication.host (default null; MCU_LAN_INTERFACE). */
      lanInterface: setting('MCU_LAN_INTERFACE', interfaceName().default(null)),
    }),
    spare: group({
      /** Warm spare media paths from the standby to every page (default true; MCU_SPARE_PATHS). */
      enabled: setting('MCU_SPARE_PATHS', z.boolean().default(true)),
      /** Addresses the standby offers its spare paths' ICE candidates on, empty = all (default []; MCU_SPARE_ICE_ADDRESSES, comma separated). */
      iceAddresses: setting('MCU_SPARE_ICE_ADDRESSES', z.array(text()).default([])),
    }),
    realtime: group({
      /** Leave libwebrtc's real-time threads alone instead of only the heartbeat threads staying real-time (default false; MCU_MEDIA_REALTIME). */
      mediaRealtime: setting('MCU_MEDIA_REALTIME', z.boolean().default(false)),
      /** Nice value of the main (JS, mixing) thread when permitted (default -20; MCU_MAIN_NICE). */
      mainNice: setting('MCU_MAIN_NICE', int(-20, 19).default(-20)),
    }),
    log: group({
      /** Lowest level logged (default warn if NODE_ENV=test, else info; LOG_LEVEL). */
      level: setting('LOG_LEVEL', z.enum(LOG_LEVELS).optional(), { defaultText: 'warn if NODE_ENV=test, else info' }),
      /** Log line format: readable text or JSON lines (default json if NODE_ENV=production, else text; MCU_LOG_FORMAT). */
      format: setting('MCU_LOG_FORMAT', z.enum(['text', 'json']).optional(), { defaultText: 'json if NODE_ENV=production, else text' }),
      /** Role shown on every log line until the process sets its own (default null; MCU_ROLE). */
      role: setting('MCU_ROLE', text().nullable().default(null)),
    }),
    standby: group({
      /** Standby: the primary's replication address it follows (default replication.host; MCU_PRIMARY_REPLICATION_HOST). */
      primaryHost: setting('MCU_PRIMARY_REPLICATION_HOST', text().optional(), { defaultText: 'replication.host' }),
      /** Standby: the primary's replication port (default replication.port; MCU_PRIMARY_REPLICATION_PORT). */
      primaryPort: setting('MCU_PRIMARY_REPLICATION_PORT', port().optional(), { defaultText: 'replication.port' }),
      /** Standby: port of its own /status while it is not serving, 0 = any free port (default 0; STANDBY_STATUS_PORT). */
      statusPort: setting('STANDBY_STATUS_PORT', port().default(0)),
    }),
    witness: group({
      /** etcd client URLs of the witness that settles promotions; empty = two-node mode, no witness (default []; MCU_WITNESS_ENDPOINTS, comma separated). */
      endpoints: setting('MCU_WITNESS_ENDPOINTS', z.array(text().regex(/^https?:\/\/[^/\s]+\/?$/, 'expected etcd client URLs like http://10.0.0.4:2379')).default([])),
      /** Names the primary/standby pair in the witness: its keys are /mcu/<clusterName>/ (default mcu; MCU_WITNESS_CLUSTER). */
      clusterName: setting('MCU_WITNESS_CLUSTER', text().regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, dots, dashes or underscores').default('mcu')),
      /** Primary: fences itself when the witness has not confirmed its epoch for this long, ms (default 1000; MCU_WITNESS_LEASE_TTL_MS). */
      leaseTtlMs: setting('MCU_WITNESS_LEASE_TTL_MS', int(50, 60000).default(1000)),
      /** Longest wait for one witness member's answer before the next is asked, ms (default 250; MCU_WITNESS_TIMEOUT_MS). */
      requestTimeoutMs: setting('MCU_WITNESS_TIMEOUT_MS', int(1, 10000).default(250)),
      /** Standby: with the witness unreachable after a verdict, how often it retries while the primary stays silent, ms (default 200; MCU_WITNESS_RETRY_MS). */
      retryMs: setting('MCU_WITNESS_RETRY_MS', int(10, 60000).default(200)),
    }),
  })
  .strict();

type Settings = z.output<typeof settingsSchema>;

/** Replication to a hot standby; present only with a secret. */
export type ReplicationConfig = Omit<Settings['replication'], 'secret' | 'secretFile' | 'port'> & {
  /** The shared secret, from replication.secret or read from replication.secretFile. */
  secret: string;
  /** Where the secret was read from, null when it was given as replication.secret. */
  secretFile: string | null;
  port: number;
};
/** The admin listener (/status, /metrics): port computed, token null when unset. */
export type AdminConfig = { host: string; port: number; token: string | null };
export type LogConfig = { level: (typeof LOG_LEVELS)[number]; format: 'text' | 'json'; role: string | null };
export type StandbyConfig = { primaryHost: string; primaryPort: number; statusPort: number };
export type RealtimeConfig = Settings['realtime'];

/** The effective configuration of a process: every setting, computed defaults filled in. */
/** The media plane (media.plane) and, for mediasoup, the address its transports listen on. */
export type MediaPlane = Settings['media']['plane'];
export type MediaConfig = { plane: MediaPlane; listenIp: string };

export type McuConfig = Omit<Settings, 'admin' | 'tls' | 'replication' | 'log' | 'standby' | 'media'> & {
  media: MediaConfig;
  admin: AdminConfig;
  /** The service's certificate and key (absolute paths, checked at load); null: plain HTTP. */
  tls: TlsFiles | null;
  /** null: no secret, no replication (the MCU runs unprotected). */
  replication: ReplicationConfig | null;
  log: LogConfig;
  standby: StandbyConfig;
};

/** One setting as the README's configuration table documents it. */
export interface SettingDoc {
  /** `group.name`, as in the config file. */
  path: string;
  env: string;
  default: string;
  secret: boolean;
}

type GroupName = keyof Settings;

interface Leaf {
  group: GroupName;
  name: string;
  schema: z.ZodTypeAny;
  meta: SettingMeta;
}

function collectLeaves(): Leaf[] {
  const out: Leaf[] = [];
  for (const [group, groupSchema] of Object.entries(settingsSchema.shape)) {
    for (const [name, schema] of Object.entries(groupSchema.removeDefault().shape as z.ZodRawShape)) {
      const meta = settingMeta.get(schema);
      if (!meta) throw new Error(`setting ${group}.${name} has no environment variable: declare it with setting()`);
      out.push({ group: group as GroupName, name, schema, meta });
    }
  }
  return out;
}

/** Every setting of the schema, in schema order. */
const leaves: readonly Leaf[] = collectLeaves();

/** Every setting with its environment variable and default, in schema order. */
export function describeSettings(): SettingDoc[] {
  const defaults = settingsSchema.parse({}) as Record<string, Record<string, unknown>>;
  return leaves.map(({ group, name, meta }) => {
    const value = defaults[group]![name];
    if (meta.defaultText === undefined && value === undefined) throw new Error(`setting ${group}.${name} has neither a default nor a defaultText`);
    return { path: `${group}.${name}`, env: meta.env, default: meta.defaultText ?? showDefault(value), secret: meta.secret === true };
  });
}

function showDefault(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The innermost type of a setting (under its default, optional, nullable and refinements). */
function baseType(schema: z.ZodTypeAny): z.ZodTypeAny {
  for (;;) {
    if (schema instanceof z.ZodDefault) schema = schema.removeDefault();
    else if (schema instanceof z.ZodOptional || schema instanceof z.ZodNullable) schema = schema.unwrap();
    else if (schema instanceof z.ZodEffects) schema = schema.innerType();
    else return schema;
  }
}

/** An environment variable's text as the setting's type; what does not convert is left for the schema to reject. */
function fromEnv(raw: string, schema: z.ZodTypeAny): unknown {
  const base = baseType(schema);
  if (base instanceof z.ZodNumber) return /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
  if (base instanceof z.ZodBoolean) {
    const word = raw.trim().toLowerCase();
    return word === '1' || word === 'true' ? true : word === '0' || word === 'false' ? false : raw;
  }
  if (base instanceof z.ZodArray) return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return raw;
}

export interface LoadConfigOptions {
  /** Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Command-line arguments; default process.argv.slice(2). Only `--config <file>` is accepted. */
  argv?: readonly string[];
  /** A standby cannot run without the primary's secret: make replication.secret required. */
  requireReplication?: boolean;
}

/** The config file named by `--config <file>` (first) or MCU_CONFIG, as an absolute path; null if none. */
export function configFile(options: Pick<LoadConfigOptions, 'env' | 'argv'> = {}): string | null {
  const env = options.env ?? process.env;
  const argv = options.argv ?? process.argv.slice(2);
  let file: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--config') {
      if (i + 1 >= argv.length) throw new ConfigError('config: --config needs a file: expected --config <file>');
      file = argv[++i]!;
    } else if (arg.startsWith('--config=')) file = arg.slice('--config='.length);
    else throw new ConfigError(`config: unknown argument "${arg}": expected --config <file>`);
  }
  file ??= env.MCU_CONFIG && env.MCU_CONFIG !== '' ? env.MCU_CONFIG : null;
  return file === null ? null : resolvePath(file);
}

/**
 * Loads, validates and completes the configuration: defaults, then the config file, then the
 * environment. Throws a ConfigError whose message has one `config: <setting>: <expected>` line
 * per problem.
 */
export function loadConfig(options: LoadConfigOptions = {}): McuConfig {
  const env = options.env ?? process.env;
  const file = configFile(options);
  const input = file === null ? {} : readConfigFile(file);
  overlay(input, envLayer(env));
  const parsed = settingsSchema.safeParse(input);
  const problems = parsed.success ? [] : parsed.error.issues.flatMap((issue) => describeIssue(issue, input));
  if (!parsed.success) throw new ConfigError(problems.join('\n'));
  const settings = parsed.data;
  const { secret, secretFile } = settings.replication;
  if (secret !== undefined && secretFile !== undefined) {
    problems.push(problemLine('replication.secretFile', 'set either replication.secret (MCU_REPLICATION_SECRET) or replication.secretFile, not both'));
  } else if (secretFile !== undefined) {
    const read = readSecretFile(resolvePath(secretFile), MIN_SECRET_LENGTH);
    if ('problem' in read) problems.push(problemLine('replication.secretFile', read.problem));
    else settings.replication.secret = read.secret;
  } else if (options.requireReplication && secret === undefined) {
    problems.push(problemLine('replication.secret', `required for a standby: the primary's secret, at least ${MIN_SECRET_LENGTH} characters`));
  }
  problems.push(...tlsProblems(settings));
  problems.push(...mediaPlaneProblems(settings));
  if (settings.admin.token === undefined && !isLoopbackHost(settings.admin.host)) {
    problems.push(problemLine('admin.host', `${settings.admin.host} is not a loopback address: set admin.token (MCU_ADMIN_TOKEN) too, or /status and /metrics are open to whoever reaches it`));
  }
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return complete(settings, env);
}

/**
 * tls.certFile and tls.keyFile: both or neither, never with takeover mode (a standby cannot
 * continue a TLS session yet), and a pair that loads (http/tls.ts).
 */
function tlsProblems(settings: Settings): string[] {
  const { certFile, keyFile } = settings.tls;
  if (certFile === undefined && keyFile === undefined) return [];
  if (certFile === undefined || keyFile === undefined) {
    return [problemLine(certFile === undefined ? 'tls.certFile' : 'tls.keyFile', 'set both tls.certFile (MCU_TLS_CERT) and tls.keyFile (MCU_TLS_KEY) to serve HTTPS, or neither to serve plain HTTP')];
  }
  if (settings.takeover.enabled) {
    return [
      problemLine(
        'tls.certFile',
        'TLS cannot be served in takeover mode (takeover.enabled, MCU_TAKEOVER=1) yet: a standby cannot continue the TLS session of a connection it takes over, so every takeover would break the clients\' connections; use reconnect mode (MCU_TAKEOVER=0) over TLS, or terminate TLS in a proxy in front and leave tls.certFile and tls.keyFile unset',
      ),
    ];
  }
  try {
    readTlsCredentials(tlsFiles(certFile, keyFile));
    return [];
  } catch (err) {
    if (err instanceof TlsCredentialsError) return [problemLine(err.setting, err.detail)];
    throw err;
  }
}

/**
 * The mediasoup plane has no failover yet: a standby could not rebuild its transports, producers
 * and consumers (issue 12, item 3), so every failover would leave the pages without media. Refused
 * with replication (a standby) and with takeover mode rather than run half-protected.
 */
function mediaPlaneProblems(settings: Settings): string[] {
  if (settings.media.plane !== 'mediasoup') return [];
  const problems: string[] = [];
  const why = 'the mediasoup media plane (media.plane, MCU_MEDIA_PLANE=mediasoup) has no failover yet: a standby cannot rebuild the pages\' mediasoup transports, so a failover would leave every call without media';
  if (settings.replication.secret !== undefined || settings.replication.secretFile !== undefined) {
    problems.push(problemLine(settings.replication.secret !== undefined ? 'replication.secret' : 'replication.secretFile', `${why}; run it without a standby (unset the replication secret) or use media.plane wrtc`));
  }
  if (settings.takeover.enabled) problems.push(problemLine('takeover.enabled', `${why}; use media.plane wrtc for takeover mode`));
  return problems;
}

function tlsFiles(certFile: string, keyFile: string): TlsFiles {
  return { certFile: resolvePath(certFile), keyFile: resolvePath(keyFile) };
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`: only this host reaches them. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Exit status of a process whose configuration is invalid (EX_CONFIG of sysexits.h). */
export const CONFIG_EXIT_CODE = 78;

/** For an entry point, before it binds anything: the configuration, or its problems on stderr and exit. */
export function loadConfigOrExit(options: LoadConfigOptions = {}): McuConfig {
  try {
    return loadConfig(options);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(CONFIG_EXIT_CODE);
  }
}

/** The logger's settings before a process loads its configuration: from the environment, defaults where invalid. */
export function bootLogConfig(env: NodeJS.ProcessEnv = process.env): LogConfig {
  const log = settingsSchema.shape.log;
  const parsed = log.safeParse(envLayer(env).log ?? {});
  return completeLog(parsed.success ? parsed.data : log.parse({}), env);
}

/** The configuration as /status shows it: secrets replaced by "***". */
export function redactConfig(config: McuConfig): McuConfig {
  const copy = structuredClone(config) as unknown as Record<string, Record<string, unknown> | null>;
  for (const { group, name, meta } of leaves) {
    const values = copy[group];
    if (meta.secret && values && values[name] != null) values[name] = '***';
  }
  return copy as unknown as McuConfig;
}

function readConfigFile(file: string): Record<string, unknown> {
  let textContent: string;
  try {
    textContent = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`config: cannot read the config file ${file} (MCU_CONFIG or --config): ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(textContent);
  } catch (err) {
    throw new ConfigError(`config: ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw new ConfigError(`config: ${file}: expected a JSON object of setting groups (${Object.keys(settingsSchema.shape).join(', ')})`);
  return value;
}

/** The settings given by environment variables (set and non-empty), grouped like the file. */
function envLayer(env: NodeJS.ProcessEnv): Record<string, Record<string, unknown>> {
  const layer: Record<string, Record<string, unknown>> = {};
  for (const { group, name, schema, meta } of leaves) {
    const raw = env[meta.env];
    if (raw === undefined || raw === '') continue;
    (layer[group] ??= {})[name] = fromEnv(raw, schema);
  }
  return layer;
}

/** The environment wins over the file. A group that is not an object in the file stays as it is, for the schema to report. */
function overlay(input: Record<string, unknown>, layer: Record<string, Record<string, unknown>>): void {
  for (const [group, values] of Object.entries(layer)) {
    const target = input[group];
    if (target === undefined) input[group] = { ...values };
    else if (isObject(target)) Object.assign(target, values);
  }
}

function complete(settings: Settings, env: NodeJS.ProcessEnv): McuConfig {
  const { secret, secretFile, port: replicationPort, ...replication } = settings.replication;
  const port = replicationPort ?? (settings.server.port === 0 ? 0 : settings.server.port + 1);
  const { host: adminHost, port: adminPort, token } = settings.admin;
  const { certFile, keyFile } = settings.tls;
  return {
    ...settings,
    admin: { host: adminHost, port: adminPort ?? (settings.server.port === 0 ? 0 : settings.server.port + 2), token: token ?? null },
    tls: certFile !== undefined && keyFile !== undefined ? tlsFiles(certFile, keyFile) : null,
    replication: secret === undefined ? null : { ...replication, secret, secretFile: secretFile === undefined ? null : resolvePath(secretFile), port },
    log: completeLog(settings.log, env),
    media: { plane: settings.media.plane, listenIp: settings.media.listenIp ?? (settings.server.host === '0.0.0.0' ? '127.0.0.1' : settings.server.host) },
    standby: {
      primaryHost: settings.standby.primaryHost ?? replication.host,
      primaryPort: settings.standby.primaryPort ?? port,
      statusPort: settings.standby.statusPort,
    },
  };
}

function completeLog(log: Settings['log'], env: NodeJS.ProcessEnv): LogConfig {
  return {
    level: log.level ?? (env.NODE_ENV === 'test' ? 'warn' : 'info'),
    format: log.format ?? (env.NODE_ENV === 'production' ? 'json' : 'text'),
    role: log.role,
  };
}

function problemLine(path: string, expected: string): string {
  const leaf = leaves.find((l) => `${l.group}.${l.name}` === path);
  return `config: ${path}: ${expected}${leaf ? ` (${leaf.meta.env})` : ''}`;
}

/** One line per problem (an unknown-keys issue is one line per key). */
function describeIssue(issue: z.ZodIssue, input: Record<string, unknown>): string[] {
  const path = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') {
    const known = issue.path.length === 0 ? Object.keys(settingsSchema.shape) : leaves.filter((l) => l.group === issue.path[0]).map((l) => l.name);
    return issue.keys.map((key) => `config: ${path === '' ? key : `${path}.${key}`}: unknown setting (expected one of ${known.join(', ')})`);
  }
  const leaf = issue.path.length === 2 ? leaves.find((l) => l.group === issue.path[0] && l.name === issue.path[1]) : undefined;
  if (!leaf) {
    const expected = issue.code === 'invalid_type' ? `expected an object of settings, got ${issue.received}` : issue.message;
    return [`config: ${path}: ${expected}`];
  }
  const value = (input[leaf.group] as Record<string, unknown>)[leaf.name];
  const got = leaf.meta.secret ? '' : `, got ${JSON.stringify(value)}`;
  return [problemLine(path, `${expectation(issue, leaf.schema)}${got}`)];
}

/** What a setting expects, in words. */
function expectation(issue: z.ZodIssue, schema: z.ZodTypeAny): string {
  const base = baseType(schema);
  if (issue.code === 'custom') return issue.message;
  if (base instanceof z.ZodNumber) {
    const kind = base.isInt ? 'an integer' : 'a number';
    return `expected ${kind} from ${base.minValue} to ${base.maxValue}`;
  }
  if (base instanceof z.ZodBoolean) return 'expected true or false (1 or 0 in the environment)';
  if (base instanceof z.ZodEnum) return `expected one of ${(base.options as string[]).join(', ')}`;
  if (base instanceof z.ZodArray) return 'expected a list of non-empty strings (comma separated in the environment)';
  if (base instanceof z.ZodString) {
    const min = base.minLength ?? 0;
    if (issue.code === 'too_small' && min > 1) return `expected at least ${min} characters`;
    return schema.isNullable() ? 'expected a non-empty string or null' : 'expected a non-empty string';
  }
  return issue.message;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
