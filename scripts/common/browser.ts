import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { readCallState, readGaps, readParticipantId, readPixels, readToneLevels, type GapStats, type ToneLevels } from '../probe/page-readout.ts';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface LaunchOptions {
  /**
   * Run Chromium inside this network namespace (the lab's client host, scripts/lab). Default:
   * the caller's. Playwright talks to Chromium over a pipe, so a wrapper that execs
   * `ip netns exec <netns> chromium` is all it takes; the wrapper's temp dir is gone once launched.
   */
  netns?: string;
  /** Run Chromium on these CPUs (taskset list, e.g. '1'): the lab's client host CPUs (LabTopology.cpus). */
  cpus?: string;
}

/** Why Chromium cannot run here (for skip messages), or null. */
export function chromiumUnavailableReason(): string | null {
  return existsSync(CHROMIUM_PATH) ? null : `${CHROMIUM_PATH} is missing: install it with "apt-get install -y chromium"`;
}

/**
 * Rebuilds the demo page's bundle when a source file is newer than it. A stale bundle served
 * to the pages (a benchmark run after editing client-demo/src without the set-up step) measures
 * old page code against a new server: it once silently disabled the warm spare paths.
 */
export function ensureClientBundle(): void {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const bundle = join(root, 'client-demo/dist/app.js');
  const sources = join(root, 'client-demo/src');
  const builtAt = existsSync(bundle) ? statSync(bundle).mtimeMs : 0;
  const newest = Math.max(...readdirSync(sources, { recursive: true, encoding: 'utf8' }).map((f) => statSync(join(sources, f)).mtimeMs));
  if (newest > builtAt) execFileSync(process.execPath, ['scripts/build-client.mjs'], { cwd: root, stdio: 'inherit' });
}

/** Debian's Chromium with fake devices; loopback ICE allowed (the MCU is on 127.0.0.1). */
export async function launchChromium(extraArgs: string[] = [], options: LaunchOptions = {}): Promise<Browser> {
  const missing = chromiumUnavailableReason();
  if (missing) throw new Error(`${missing} (the test command does this)`);
  ensureClientBundle();
  let wrapperDir: string | null = null;
  let executablePath = CHROMIUM_PATH;
  if (options.netns !== undefined) {
    if (!/^[\w.-]+$/.test(options.netns)) throw new Error(`not a network namespace name: ${JSON.stringify(options.netns)}`);
    wrapperDir = mkdtempSync(join(tmpdir(), 'chromium-netns-'));
    executablePath = join(wrapperDir, 'chromium');
    // exec keeps the pid: Playwright's kill on close() reaches Chromium itself.
    if (options.cpus !== undefined && !/^[\d,-]+$/.test(options.cpus)) throw new Error(`not a CPU list: ${JSON.stringify(options.cpus)}`);
    const pin = options.cpus === undefined ? '' : `taskset -c ${options.cpus} `;
    writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${options.netns} ${pin}${CHROMIUM_PATH} "$@"\n`, { mode: 0o755 });
  }
  try {
    return await launchWith(executablePath, extraArgs);
  } finally {
    if (wrapperDir) rmSync(wrapperDir, { recursive: true, force: true });
  }
}

function launchWith(executablePath: string, extraArgs: string[]): Promise<Browser> {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection',
      '--autoplay-policy=no-user-gesture-required',
      '--disable-renderer-backgrounding',
      '--disable-background-timer-throttling',
      '--disable-backgrounding-occluded-windows',
      ...extraArgs,
    ],
  });
}

export interface ParticipantSpec {
  name: string;
  toneHz: number;
  /** Tile colour as #rrggbb. */
  tile: string;
}

export interface ParticipantPage {
  spec: ParticipantSpec;
  context: BrowserContext;
  page: Page;
  participantId(): Promise<string>;
  toneLevels(frequencies: number[]): Promise<ToneLevels>;
  samplePixels(points: Array<[number, number]>): Promise<Array<[number, number, number]>>;
  gaps(): Promise<GapStats>;
  state(): Promise<string>;
  close(): Promise<void>;
}

/** Opens the demo page for one participant with its own tone and tile, joined by URL. */
export async function openParticipant(browser: Browser, baseUrl: string, room: string, spec: ParticipantSpec): Promise<ParticipantPage> {
  // The tests' MCUs serve HTTPS with a self-signed certificate made for the run (test/helpers/tls.ts).
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const consoleLines: string[] = [];
  page.on('console', (msg) => {
    consoleLines.push(msg.text());
    if (process.env.TEST_VERBOSE) process.stderr.write(`[page ${spec.name}] ${msg.text()}\n`);
  });
  const url = `${baseUrl}/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(spec.name)}&autojoin=1&tone=${spec.toneHz}&tile=${encodeURIComponent(spec.tile)}`;
  await page.goto(url);
  await page.waitForFunction(() => window.mcuDemo?.client?.state === 'in-call', undefined, { timeout: 20000 });
  return {
    spec,
    context,
    page,
    participantId: () => readParticipantId(page),
    toneLevels: (frequencies) => readToneLevels(page, frequencies),
    samplePixels: (points) => readPixels(page, points),
    gaps: () => readGaps(page),
    state: () => readCallState(page),
    close: async () => {
      await context.close().catch(() => undefined);
    },
  };
}

export function hexToRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.replace('#', ''), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

export function colourDistance(a: readonly number[], b: readonly number[]): number {
  return Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!);
}

/** Polls `check` until it returns true or the time runs out; returns the last value seen. */
export async function eventually<T>(probe: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 15000, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!ok(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, intervalMs));
    value = await probe();
  }
  return value;
}
