/**
 * The mediasoup worker binary: where it is, and the one way the MCU loads mediasoup and starts
 * workers. `bash scripts/setup.sh` builds the worker offline (scripts/build-mediasoup-worker.sh)
 * into `/var/cache/hot-standby-mcu/mediasoup-worker/<version>/mediasoup-worker`, outside the clone
 * so `npm ci` keeps it; `MEDIASOUP_WORKER_BIN` points at a worker built elsewhere instead.
 *
 * mediasoup reads `MEDIASOUP_WORKER_BIN` once, when it is first loaded: load its values only
 * through `loadMediasoup()` here (type-only imports of 'mediasoup' are fine anywhere).
 */
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as Mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import {
  MediasoupLoadedTooEarlyError,
  MediasoupWorkerMissingError,
  MediasoupWorkerStartError,
  type MediasoupWorkerSource,
} from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';

/** Where scripts/build-mediasoup-worker.sh caches workers, one folder per mediasoup version. */
export const MEDIASOUP_WORKER_CACHE_DIR = '/var/cache/hot-standby-mcu/mediasoup-worker';

/** The worker binary the MCU uses, and why that one. */
export interface MediasoupWorkerBin {
  /** Absolute path of the executable. */
  path: string;
  /** The installed mediasoup's version, the worker's too. */
  version: string;
  source: MediasoupWorkerSource;
}

export type MediasoupModule = typeof Mediasoup;

const log = createLogger('mediasoup-worker');
const CLOSED_ON_PURPOSE = /Worker::OnChannelClosed\(\) \| channel remotely closed/;

/** The installed mediasoup's version (its package.json; the package does not export it as a path). */
export async function mediasoupVersion(): Promise<string> {
  const main = createRequire(import.meta.url).resolve('mediasoup');
  // main is <package>/node/lib/index.js.
  const manifest = path.resolve(path.dirname(main), '..', '..', 'package.json');
  return (JSON.parse(await readFile(manifest, 'utf8')) as { version: string }).version;
}

/** The cached worker of a mediasoup version, as scripts/build-mediasoup-worker.sh installs it. */
export function cachedMediasoupWorkerPath(version: string): string {
  return path.join(MEDIASOUP_WORKER_CACHE_DIR, version, 'mediasoup-worker');
}

/**
 * The worker binary to use: `MEDIASOUP_WORKER_BIN` when set, else the cached build of the
 * installed version. Throws `MediasoupWorkerMissingError` when it is not an executable file.
 */
export async function resolveMediasoupWorkerBin(env: NodeJS.ProcessEnv = process.env): Promise<MediasoupWorkerBin> {
  const version = await mediasoupVersion();
  const fromEnv = env['MEDIASOUP_WORKER_BIN'];
  const bin: MediasoupWorkerBin =
    fromEnv !== undefined && fromEnv !== ''
      ? { path: path.resolve(fromEnv), version, source: 'MEDIASOUP_WORKER_BIN' }
      : { path: cachedMediasoupWorkerPath(version), version, source: 'cache' };
  let detail: string | null = null;
  try {
    if (!(await stat(bin.path)).isFile()) detail = 'not a file';
    else await access(bin.path, constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    detail = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not executable' : String(err);
  }
  if (detail !== null) throw new MediasoupWorkerMissingError(bin.path, bin.source, version, detail);
  return bin;
}

let loading: Promise<{ mediasoup: MediasoupModule; bin: MediasoupWorkerBin }> | null = null;

/**
 * mediasoup, loaded with the worker binary chosen (once per process). Throws
 * `MediasoupWorkerMissingError` without a binary, `MediasoupLoadedTooEarlyError` when something
 * loaded mediasoup before and it would start another binary.
 */
export async function loadMediasoup(): Promise<{ mediasoup: MediasoupModule; bin: MediasoupWorkerBin }> {
  loading ??= (async () => {
    const bin = await resolveMediasoupWorkerBin();
    // mediasoup reads the variable when its module is first evaluated: set before the import.
    process.env['MEDIASOUP_WORKER_BIN'] = bin.path;
    const mediasoup = await import('mediasoup');
    if (path.resolve(mediasoup.workerBin) !== bin.path) throw new MediasoupLoadedTooEarlyError(mediasoup.workerBin, bin.path);
    // mediasoup's own warnings and errors (it logs through `debug` otherwise) in the MCU's log.
    mediasoup.setLogEventListeners({
      onwarn: (namespace, message) => log.warn(message, { namespace }),
      onerror: (namespace, message, error) => {
        // A worker closed on purpose may notice its channel closing before the SIGTERM and say
        // so on stderr, which mediasoup reports as an error: not one.
        if (CLOSED_ON_PURPOSE.test(message)) log.debug(message, { namespace });
        else log.error(message, { namespace, error: error?.message });
      },
    });
    log.debug('mediasoup loaded', { version: mediasoup.version, workerBin: bin.path, source: bin.source });
    return { mediasoup, bin };
  })();
  try {
    return await loading;
  } catch (err) {
    // A missing binary may be built meanwhile: the next call looks again.
    loading = null;
    throw err;
  }
}

/**
 * Starts a mediasoup worker process (`createWorker` with the chosen binary). Throws
 * `MediasoupWorkerMissingError` without a binary and `MediasoupWorkerStartError` when the
 * worker does not come up.
 */
export async function createMediasoupWorker<WorkerAppData extends ms.AppData = ms.AppData>(
  settings: ms.WorkerSettings<WorkerAppData> = {},
): Promise<ms.Worker<WorkerAppData>> {
  const { mediasoup, bin } = await loadMediasoup();
  try {
    return await mediasoup.createWorker<WorkerAppData>(settings);
  } catch (err) {
    throw new MediasoupWorkerStartError(bin.path, err instanceof Error ? err.message : String(err), { cause: err });
  }
}
