/**
 * The configuration as real processes use it: a bad one stops the MCU, the standby and the
 * supervisor before they bind anything (its problems alone on stderr), and a good one is what
 * /status shows, secrets redacted.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CONFIG_EXIT_CODE } from '../../mcu/src/core/config.ts';
import { Supervisor } from '../../standby/src/supervisor/supervisor.ts';
import { freePort } from '../../scripts/common/ports.ts';
import { startNode } from '../../scripts/common/processes.ts';
import { cleanupsAfterEach } from '../helpers/cleanups.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcu-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cleanups = cleanupsAfterEach();

function configFile(name: string, content: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(content));
  return file;
}

/** Runs an entry point that must refuse its configuration; returns its stderr lines. */
async function refused(entry: string, env: Record<string, string>, args: string[] = []): Promise<string[]> {
  const proc = startNode(entry, { LOG_LEVEL: 'debug', ...env }, args);
  cleanups.push(() => proc.kill());
  const { code } = await proc.exited;
  assert.equal(code, CONFIG_EXIT_CODE, `${entry} exits with ${CONFIG_EXIT_CODE}; stderr:\n${proc.stderr.join('\n')}`);
  // Nothing started: no milestone on stdout, and no log line (at debug level) besides the problems.
  assert.deepEqual(proc.events, [], `${entry} printed nothing on stdout`);
  return proc.stderr;
}

describe('configuration (real processes)', () => {
  it('the MCU with a bad config exits non-zero before listening, one line per problem', async () => {
    const port = await freePort();
    const file = configFile('bad-mcu.json', { server: { port }, limits: { maxRoom: 5 } });
    const stderr = await refused('mcu/src/main.ts', { MCU_CONFIG: file, MCU_REPLICATION_SECRET: 'short' });
    assert.deepEqual(stderr, [
      'config: limits.maxRoom: unknown setting (expected one of maxParticipantsPerRoom, maxRooms, maxMessageBytes, resumeGraceMs, joinsPerWindow, joinWindowMs)',
      'config: replication.secret: expected at least 16 characters (MCU_REPLICATION_SECRET)',
    ]);
  });

  it('the standby without a secret and the supervisor with a bad setting exit non-zero before binding', async () => {
    assert.deepEqual(await refused('standby/src/main.ts', { MCU_REPLICATION_SECRET: '' }), [
      "config: replication.secret: required for a standby: the primary's secret, at least 16 characters (MCU_REPLICATION_SECRET)",
    ]);
    assert.deepEqual(await refused('standby/src/supervisor/supervisor-main.ts', { PORT: 'http' }), [
      'config: server.port: expected an integer from 0 to 65535, got "http" (PORT)',
    ]);
  });

  it('/status shows the effective configuration (file, then environment) with the secret redacted', async () => {
    const secret = 'status-secret-0123456789';
    const file = configFile('good-mcu.json', { limits: { maxRooms: 6, maxParticipantsPerRoom: 4 }, replication: { secret } });
    const proc = startNode('mcu/src/main.ts', { PORT: '0', HOST: '127.0.0.1', MCU_MAX_PARTICIPANTS_PER_ROOM: '5' }, ['--config', file]);
    cleanups.push(() => proc.kill('SIGTERM'));
    const listening = await proc.waitFor((e) => e.event === 'listening');
    const text = await (await fetch(`http://127.0.0.1:${listening.adminPort}/status`)).text();
    assert.ok(!text.includes(secret), 'the secret is not in /status');
    const { config } = JSON.parse(text) as { config: { limits: { maxRooms: number; maxParticipantsPerRoom: number }; replication: { secret: string; port: number } } };
    assert.equal(config.limits.maxRooms, 6);
    assert.equal(config.limits.maxParticipantsPerRoom, 5, 'the environment wins over the file');
    assert.equal(config.replication.secret, '***');
  });

  it("the standby's /status shows its configuration with the secret redacted", async () => {
    const secret = 'standby-secret-0123456789';
    const port = await freePort();
    const supervisor = new Supervisor({ port, replicationPort: await freePort(), adminPort: await freePort(), host: '127.0.0.1', secret, env: { MCU_HOST_PROBE_MS: '30' } });
    cleanups.push(() => supervisor.close());
    await supervisor.start();
    const text = await (await fetch(`http://127.0.0.1:${supervisor.standby!.statusPort}/status`)).text();
    assert.ok(!text.includes(secret), 'the secret is not in /status');
    const status = JSON.parse(text) as { standbyState: string; config: { server: { port: number }; replication: { secret: string }; detection: { hostProbeMs: number } } };
    assert.equal(status.standbyState, 'ready');
    assert.equal(status.config.server.port, port);
    assert.equal(status.config.detection.hostProbeMs, 30);
    assert.equal(status.config.replication.secret, '***');
  });
});
