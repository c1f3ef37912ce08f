/**
 * Turns MCU logs into a failover timeline. Reads the logs of one or more processes
 * (JSON lines from NODE_ENV=production, or the readable development format), keeps
 * the failover steps and role changes, and prints them in time order with the
 * milliseconds since the first step.
 *
 *   node --import tsx scripts/failover-timeline.ts primary.log standby.log [--json] [--explain]
 *   ... | node --import tsx scripts/failover-timeline.ts -
 *
 * The steps and what they mean: mcu/src/wire/failover-steps.ts. Fencing of a wrongly suspected
 * primary (mcu/src/takeover/fencing/) shows as steps too: superseded-sent (standby),
 * superseded-received, fence-stall / fence-verified (a pause verified with the standby),
 * fence-deciding / fence-probe / fence-decided or fence-released (a lost standby judged; takeover
 * mode), fenced, fence-vip-dropped, and the role change to `fenced`; with a witness
 * (mcu/src/witness/) the standby's witness-won / witness-lost / witness-unreachable /
 * promotion-abandoned and the old primary's witness-superseded / witness-lease-expired.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { FAILOVER_STEP_DESCRIPTIONS, isFailoverStep } from '../mcu/src/wire/failover-steps.ts';

export interface TimelineEntry {
  at: number;
  iso: string;
  pid: number | null;
  module: string;
  step: string;
  message: string;
  detail: Record<string, unknown>;
}

/** What a step means (`--explain`), null for a role change or a step this version does not know. */
export function describeStep(step: string): string | null {
  return isFailoverStep(step) ? FAILOVER_STEP_DESCRIPTIONS[step] : null;
}

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
    const meaning = explain ? describeStep(e.step) : null;
    process.stdout.write(`${offset}  ${e.iso}  pid ${String(e.pid ?? '?').padEnd(7)} ${e.step.padEnd(24)} ${e.message}${participant}${meaning ? `  (${meaning})` : ''}\n`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
