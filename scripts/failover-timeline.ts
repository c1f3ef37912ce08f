/**
 * Turns MCU logs into a failover timeline. Reads the logs of one or more processes
 * (JSON lines from NODE_ENV=production, or the readable development format), keeps
 * the failover steps and role changes, and prints them in time order with the
 * milliseconds since the first step.
 *
 *   node --import tsx scripts/failover-timeline.ts primary.log standby.log [--json] [--explain]
 *   ... | node --import tsx scripts/failover-timeline.ts -
 *
 * Fencing of a wrongly suspected primary (takeover mode, mcu/src/takeover/fencing.ts) shows as
 * steps too: superseded-sent (standby), superseded-received, fence-stall / fence-verified (a
 * pause verified with the standby), fence-deciding / fence-probe / fence-decided or
 * fence-released (a lost standby judged), fenced, fence-vip-dropped, and the role change to
 * `fenced`.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

export interface TimelineEntry {
  at: number;
  iso: string;
  pid: number | null;
  module: string;
  step: string;
  message: string;
  detail: Record<string, unknown>;
}

/**
 * The failover steps the MCU and the standby log (their `failover` field), in their usual
 * order, and what each one means. Steps not listed here are still shown.
 */
export const FAILOVER_STEPS: Readonly<Record<string, string>> = {
  suspected: 'standby: the replication stream ended, asking the heartbeat thread',
  'confirmed-dead': 'standby: the heartbeat thread confirmed the death',
  'vip-raised': 'standby (takeover): service address raised',
  'connections-rebuilt': 'standby (takeover): signaling connections rebuilt',
  restored: 'standby: rooms and participants rebuilt; connected spare paths adopted (onSpares)',
  'mixing-on-spare': 'standby: the mix runs on a participant\'s warm spare path',
  serving: 'new primary: service port bound, serving',
  'sessions-reattached': 'new primary (takeover): socket.io sessions re-attached',
  'first-client': 'new primary: the first client resumed',
  reattached: 'new primary (takeover): a participant re-attached',
  'spare-activate-sent': 'new primary: told a resumed page to switch to its spare path',
  'spare-switched': 'new primary: the page confirmed it is on the spare path (trigger: silence or server)',
  'spare-refused': 'new primary: the page had no such spare path; restart offer instead',
  'restart-offer-sent': 'new primary: server-initiated restart offer sent (no spare path)',
  'media-restarted': 'new primary: the page answered the restart offer',
  'promotion-complete': 'new primary: replication and heartbeats ready for the next standby',
  'superseded-sent': 'standby (takeover): told the old primary it is superseded before promoting',
  'superseded-received': 'old primary (takeover): a standby says it is promoting',
  'fence-stall': 'primary (takeover): its heartbeats paused; output held while it verifies',
  'fence-deciding': 'primary (takeover): standby lost; output held until it is known whether it took over',
  'fence-probe': 'primary (takeover): probed the lost standby\'s replication port',
  fenced: 'old primary (takeover): fenced, stops serving',
  'fence-vip-dropped': 'old primary (takeover): VIP dropped',
  'fence-vip-failed': 'old primary (takeover): could not drop the VIP',
  'fence-lan-down': 'primary (takeover): its LAN interface lost its carrier',
  'fence-lan-up': 'primary (takeover): its LAN interface is back',
};

const DEV_LINE = /^(\d{4}-\d\d-\d\dT[\d:.]+Z)\s+(\w+)\s+\[([^\]]+)\]\s+(.*?)(\s+(\{.*\}))?$/;

/** Parses one log line of either format; null when it is not a failover step. */
export function parseLogLine(line: string): TimelineEntry | null {
  let record: Record<string, unknown>;
  const trimmed = line.replace(/^#\s+/, '').replace(/^\[[^\]]*\]\s+/, '');
  if (trimmed.startsWith('{')) {
    try {
      record = JSON.parse(trimmed) as Record<string, unknown>;
    } catch {
      return null;
    }
  } else {
    const m = DEV_LINE.exec(trimmed);
    if (!m) return null;
    let extra: Record<string, unknown> = {};
    if (m[6]) {
      try {
        extra = JSON.parse(m[6]) as Record<string, unknown>;
      } catch {
        extra = {};
      }
    }
    record = { timestamp: m[1], level: m[2], module: m[3], message: m[4], ...extra };
  }
  const message = String(record.message ?? '');
  const isRoleChange = message === 'role change' || message === 'standby state';
  const step = typeof record.failover === 'string' ? record.failover : isRoleChange ? `${String(record.from)} -> ${String(record.to)}` : null;
  if (step === null) return null;
  const at = Date.parse(String(record.timestamp));
  if (Number.isNaN(at)) return null;
  const { timestamp, level, module, message: _m, failover: _f, ...detail } = record;
  void level;
  return {
    at,
    iso: String(timestamp),
    pid: typeof record.pid === 'number' ? record.pid : null,
    module: String(module ?? ''),
    step,
    message,
    detail,
  };
}

export function buildTimeline(lines: Iterable<string>): TimelineEntry[] {
  const entries: TimelineEntry[] = [];
  for (const line of lines) {
    const entry = parseLogLine(line);
    if (entry) entries.push(entry);
  }
  return entries.sort((a, b) => a.at - b.at);
}

async function readLines(path: string): Promise<string[]> {
  const input = path === '-' ? process.stdin : createReadStream(path);
  const lines: string[] = [];
  for await (const line of createInterface({ input, crlfDelay: Infinity })) lines.push(line);
  return lines;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const explain = args.includes('--explain');
  const files = args.filter((a) => a !== '--json' && a !== '--explain');
  if (files.length === 0) {
    process.stderr.write('usage: failover-timeline.ts <log file>... | - [--json] [--explain]\n');
    process.exit(2);
  }
  const lines = (await Promise.all(files.map(readLines))).flat();
  const timeline = buildTimeline(lines);
  if (json) {
    process.stdout.write(JSON.stringify(timeline, null, 2) + '\n');
    return;
  }
  if (timeline.length === 0) {
    process.stdout.write('no failover steps found in these logs\n');
    return;
  }
  const t0 = timeline[0]!.at;
  for (const e of timeline) {
    const offset = `+${String(e.at - t0).padStart(6)} ms`;
    const participant = typeof e.detail.participant === 'string' ? ` [${e.detail.participant.slice(0, 8)}]` : '';
    process.stdout.write(`${offset}  ${e.iso}  pid ${String(e.pid ?? '?').padEnd(7)} ${e.step.padEnd(24)} ${e.message}${participant}${explain && FAILOVER_STEPS[e.step] ? `  (${FAILOVER_STEPS[e.step]})` : ''}\n`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
