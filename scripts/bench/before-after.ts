/**
 * Before/after in the same run: a benchmark run alternately on an older commit (a git worktree
 * beside this one) and on this tree, so both see the same machine, the same load and the same
 * drift over time (this 2-core machine is noisy: figures from different runs do not compare).
 *
 *   node --import tsx scripts/bench/before-after.ts --base <rev> --bench chaos|takeover|false-takeover [--rounds 2] -- <benchmark options>
 *
 * Each round runs the benchmark once in each tree (the order alternates between rounds), with
 * the same options. The old tree gets its own worktree under /tmp/mcu-bench-trees/<sha>
 * (node_modules linked to this tree's, its native addon and page bundle built there; kept for
 * the next run). The benchmark's entry point is looked up in each tree, so a benchmark that
 * moved between the two commits still pairs up. Writes bench-results/before-after-<bench>.json
 * (every run's full report, and per metric the before and after samples and summaries) and an
 * HTML page of the distributions side by side, and prints the table.
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../common/processes.ts';
import { BenchArgsError, parseBenchArgs } from './common/args.ts';
import { renderPlotPage, type PlotMetric } from './common/plot.ts';
import { summarize, type Summary } from './common/stats.ts';

type BenchName = 'chaos' | 'takeover' | 'false-takeover';

/**
 * Where each benchmark's entry point and report have lived (newest layout first). `mcuTreeOption`:
 * the benchmark runs from this tree and takes the other tree's MCU through that option.
 */
const BENCHES: Record<BenchName, { entries: string[]; report: string; mcuTreeOption?: string }> = {
  chaos: { entries: ['scripts/bench/chaos/main.ts', 'scripts/bench/chaos.ts', 'scripts/bench-chaos.ts'], report: 'bench-results/chaos.json' },
  takeover: { entries: ['scripts/bench/takeover.ts', 'scripts/bench-takeover.ts'], report: 'bench-results/takeover.json' },
  'false-takeover': { entries: ['scripts/bench/false-takeover.ts'], report: 'bench-results/false-takeover.json', mcuTreeOption: '--mcu-tree' },
};

/** At most this many rounds: each runs two full benchmarks. */
const MAX_ROUNDS = 10;
/** One benchmark run may take at most this long before it is stopped (and the comparison ends). */
const RUN_TIMEOUT_MS = 90 * 60_000;

/** Samples per metric (e.g. `warm-spare audioGapMs`) and counters (e.g. `warm-spare failedRounds`) of one run's report. */
interface Extracted {
  samples: Record<string, number[]>;
  counts: Record<string, number>;
}

function push(into: Record<string, number[]>, key: string, value: unknown): void {
  if (typeof value === 'number' && Number.isFinite(value)) (into[key] ??= []).push(value);
}

/** What each benchmark's report holds, as samples: the fields have been stable across the layouts. */
const EXTRACT: Record<BenchName, (report: unknown) => Extracted> = {
  chaos(report) {
    const out: Extracted = { samples: {}, counts: {} };
    const modes = (report as { modes?: Record<string, { rows?: unknown[]; counts?: Record<string, unknown> }> }).modes ?? {};
    for (const [mode, rep] of Object.entries(modes)) {
      for (const row of (rep.rows ?? []) as Array<Record<string, unknown> & { pages?: Array<Record<string, unknown>> }>) {
        for (const key of ['detectionMs', 'completeMs']) push(out.samples, `${mode} ${key}`, row[key]);
        // Page metrics only where the page recovered (the benchmark's own rule).
        for (const page of row.pages ?? []) {
          if (page.recovered !== true) continue;
          for (const key of ['voiceGapMs', 'tileGapMs', 'audioGapMs', 'videoGapMs', 'signalingGapMs']) push(out.samples, `${mode} ${key}`, page[key]);
        }
      }
      for (const key of ['failedRounds', 'pagesDisconnected', 'incidents', 'fallbacks', 'changedIds']) {
        const v = rep.counts?.[key];
        if (typeof v === 'number') out.counts[`${mode} ${key}`] = v;
      }
      out.counts[`${mode} rounds`] = (rep.rows ?? []).length;
    }
    return out;
  },
  takeover(report) {
    const out: Extracted = { samples: {}, counts: {} };
    const r = report as { faults?: Record<string, { samples?: Array<Record<string, unknown>> }>; scale?: Array<Record<string, unknown>> };
    for (const [fault, { samples = [] }] of Object.entries(r.faults ?? {})) {
      for (const s of samples) {
        if (s.ok !== true) continue;
        for (const key of ['detectionMs', 'servingMs', 'maxAckGapMs', 'reattachMs']) push(out.samples, `${fault} ${key}`, s[key]);
      }
      out.counts[`${fault} failovers`] = samples.length;
      out.counts[`${fault} errors`] = samples.filter((s) => s.ok !== true).length;
      out.counts[`${fault} survivedAll`] = samples.filter((s) => s.ok === true && s.survived === true).length;
    }
    for (const s of r.scale ?? []) if (s.ok === true) push(out.samples, `scale ${String(s.connections)} reattachMs`, s.reattachMs);
    return out;
  },
  'false-takeover'(report) {
    const out: Extracted = { samples: {}, counts: {} };
    const r = report as Record<string, unknown> & { pairs?: Array<Record<string, unknown>>; nearMisses?: unknown[]; heartbeatPauses?: { standbySelfPausesMs?: unknown[] } };
    for (const pair of r.pairs ?? []) {
      for (const v of (pair.beatGapsMs as unknown[] | undefined) ?? []) push(out.samples, 'standby beatGapMs (per 10 s)', v);
      for (const v of (pair.tickGapsMs as unknown[] | undefined) ?? []) push(out.samples, 'primary tickGapMs (per 10 s)', v);
    }
    for (const v of r.nearMisses ?? []) push(out.samples, 'nearMissMs', v);
    for (const v of r.heartbeatPauses?.standbySelfPausesMs ?? []) push(out.samples, 'standby selfPauseMs', v);
    for (const key of ['deathVerdicts', 'promotions', 'fencedPrimaries', 'suspicions', 'fenceStalls', 'pairErrors', 'joins', 'unexpectedRealtimeThreads', 'pairSeconds']) {
      const v = r[key];
      if (typeof v === 'number') out.counts[key] = Math.round(v);
    }
    out.counts.nearMisses = (r.nearMisses ?? []).length;
    return out;
  },
};

function git(args: string[], cwd = projectRoot): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
}

/** A worktree of `rev` ready to run (dependencies linked, native addon and page bundle built). */
function prepareTree(rev: string): string {
  const sha = git(['rev-parse', '--verify', `${rev}^{commit}`]);
  const dir = join('/tmp/mcu-bench-trees', sha.slice(0, 12));
  if (!existsSync(join(dir, '.git'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync('/tmp/mcu-bench-trees', { recursive: true });
    git(['worktree', 'add', '--detach', dir, sha]);
  }
  if (!existsSync(join(dir, 'node_modules'))) symlinkSync(join(projectRoot, 'node_modules'), join(dir, 'node_modules'));
  const addon = 'native/build/Release/tcp_takeover.node';
  if (!existsSync(join(dir, addon))) {
    // The same addon sources: reuse this tree's build; otherwise build it there.
    let same = true;
    try {
      execFileSync('git', ['diff', '--quiet', sha, 'HEAD', '--', 'native/addon', 'native/binding.gyp'], { cwd: projectRoot, stdio: 'ignore' });
    } catch {
      same = false;
    }
    if (same && existsSync(join(projectRoot, addon))) cpSync(join(projectRoot, 'native/build'), join(dir, 'native/build'), { recursive: true });
    else execFileSync('bash', ['scripts/build-native.sh'], { cwd: dir, stdio: 'inherit' });
  }
  execFileSync(process.execPath, ['scripts/build-client.mjs'], { cwd: dir, stdio: 'inherit' });
  return dir;
}

function entryIn(tree: string, bench: BenchName): string {
  const entry = BENCHES[bench].entries.find((e) => existsSync(join(tree, e)));
  if (!entry) throw new Error(`no ${bench} benchmark in ${tree} (looked for ${BENCHES[bench].entries.join(', ')})`);
  return entry;
}

/** Runs the benchmark in `tree`; resolves with its report (copied to `saveAs`). */
function runBench(tree: string, bench: BenchName, args: string[], saveAs: string): Promise<unknown> {
  const option = BENCHES[bench].mcuTreeOption;
  // This tree's harness with the other tree's MCU, or each tree's own benchmark.
  const runIn = option ? projectRoot : tree;
  if (option && tree !== projectRoot) args = [...args, option, tree];
  const entry = entryIn(runIn, bench);
  const report = join(runIn, BENCHES[bench].report);
  rmSync(report, { force: true });
  console.log(`\n== ${runIn}: node --import tsx ${entry} ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], { cwd: runIn, stdio: 'inherit' });
    const timer = setTimeout(() => child.kill('SIGINT'), RUN_TIMEOUT_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (!existsSync(report)) return reject(new Error(`${entry} in ${tree} ended (${code ?? signal}) without writing ${BENCHES[bench].report}`));
      copyFileSync(report, saveAs);
      resolve(JSON.parse(readFileSync(saveAs, 'utf8')));
    });
  });
}

function merge(into: Extracted, from: Extracted): void {
  for (const [k, v] of Object.entries(from.samples)) (into.samples[k] ??= []).push(...v);
  for (const [k, v] of Object.entries(from.counts)) into.counts[k] = (into.counts[k] ?? 0) + v;
}

function fmt(s: Summary): string {
  return s.n === 0 ? 'n=0' : `${s.min} / ${s.median} / ${s.p95} / ${s.max} (n=${s.n})`;
}

async function main(): Promise<void> {
  // Everything after `--` goes to the benchmark itself, unchanged.
  const dash = process.argv.indexOf('--');
  const own = dash < 0 ? process.argv.slice(2) : process.argv.slice(2, dash);
  const benchArgs = dash < 0 ? [] : process.argv.slice(dash + 1);
  const args = parseBenchArgs(
    {
      command: 'scripts/bench/before-after.ts',
      summary: 'One benchmark alternately on an older commit (a worktree) and on this tree, same options, same run; options after -- go to the benchmark.',
      options: {
        base: { type: 'string', help: 'the older commit (any git revision)' },
        bench: { type: 'list', choices: ['chaos', 'takeover', 'false-takeover'], default: ['chaos'], help: 'the benchmark' },
        rounds: { type: 'int', default: 2, min: 1, max: MAX_ROUNDS, help: 'rounds; each runs the benchmark once per tree, the order alternating' },
      },
    },
    own,
  );
  if (!args.base) throw new BenchArgsError('--base is required (the older commit)');
  if (args.bench.length !== 1) throw new BenchArgsError('--bench takes one benchmark');
  const bench = args.bench[0] as BenchName;
  const rounds = args.rounds;
  const base = args.base;
  const trees = { before: prepareTree(base), after: projectRoot };
  const heads = { before: git(['rev-parse', 'HEAD'], trees.before), after: git(['rev-parse', 'HEAD']) };
  const outDir = join(projectRoot, 'bench-results', `before-after-${bench}`);
  mkdirSync(outDir, { recursive: true });
  const t0 = Date.now();
  const totals: Record<'before' | 'after', Extracted> = { before: { samples: {}, counts: {} }, after: { samples: {}, counts: {} } };
  const runs: Array<{ side: 'before' | 'after'; round: number; file: string; startedAt: string; load1: number }> = [];
  for (let round = 1; round <= rounds; round++) {
    const order: Array<'before' | 'after'> = round % 2 === 1 ? ['before', 'after'] : ['after', 'before'];
    for (const side of order) {
      const file = join(outDir, `${side}-${round}.json`);
      const startedAt = new Date().toISOString();
      const report = await runBench(trees[side], bench, benchArgs, file);
      merge(totals[side], EXTRACT[bench](report));
      runs.push({ side, round, file, startedAt, load1: loadavg()[0]! });
    }
  }
  const keys = [...new Set([...Object.keys(totals.before.samples), ...Object.keys(totals.after.samples)])].sort();
  const metrics: Record<string, { before: Summary; after: Summary; medianRatio: number | null }> = {};
  console.log(`\n${bench}: before ${heads.before.slice(0, 10)} vs after ${heads.after.slice(0, 10)}, ${rounds} round(s), alternating; min / median / p95 / max (n) in ms`);
  for (const key of keys) {
    const before = summarize(totals.before.samples[key] ?? [], 1);
    const after = summarize(totals.after.samples[key] ?? [], 1);
    const medianRatio = before.n > 0 && after.n > 0 && before.median !== 0 ? Math.round((after.median / before.median) * 100) / 100 : null;
    metrics[key] = { before, after, medianRatio };
    console.log(`  ${key.padEnd(34)} before ${fmt(before).padEnd(40)} after ${fmt(after).padEnd(40)} ratio ${medianRatio ?? '-'}`);
  }
  const countKeys = [...new Set([...Object.keys(totals.before.counts), ...Object.keys(totals.after.counts)])].sort();
  for (const key of countKeys) console.log(`  ${key.padEnd(34)} before ${totals.before.counts[key] ?? '-'}   after ${totals.after.counts[key] ?? '-'}`);
  const result = {
    at: new Date(t0).toISOString(),
    durationS: Math.round((Date.now() - t0) / 1000),
    host: { cpus: cpus().length },
    bench,
    benchArgs,
    rounds,
    before: { rev: base, sha: heads.before, tree: trees.before },
    after: { sha: heads.after, tree: trees.after },
    runs,
    metrics,
    counts: { before: totals.before.counts, after: totals.after.counts },
  };
  const outJson = join(projectRoot, 'bench-results', `before-after-${bench}.json`);
  writeFileSync(outJson, JSON.stringify(result, null, 2) + '\n');
  const plotMetrics: PlotMetric[] = keys.map((key) => ({
    label: key,
    unit: 'ms',
    series: (['before', 'after'] as const).map((side) => ({ name: `${side} ${heads[side].slice(0, 8)}`, points: (totals[side].samples[key] ?? []).map((value) => ({ value })) })),
  }));
  writeFileSync(
    outJson.replace(/\.json$/, '.html'),
    renderPlotPage({ title: `${bench}: before and after, same run`, subtitle: [`${result.at}, ${result.durationS} s, ${rounds} round(s) alternating`, `options: ${benchArgs.join(' ') || '(defaults)'}`], metrics: plotMetrics }),
  );
  console.log(`\nwrote ${outJson} and the .html beside it`);
}

await main();
