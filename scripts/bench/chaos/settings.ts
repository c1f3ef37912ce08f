/** The chaos benchmark's settings: its modes, what counts as steady media, its time limits. */
import { splitCpus } from '../../lab/topology.ts';

export const MAX_KILLS = 200;
export const MODE_NAMES = ['reconnect', 'takeover', 'takeover-crash', 'warm-spare', 'warm-spare-crash'] as const;
/** Modes that run in the namespace lab. */
export const LAB_MODES: readonly ModeName[] = ['takeover', 'takeover-crash', 'warm-spare', 'warm-spare-crash'];
/** Modes whose signaling connections must survive the failover (no disconnect). */
export const TAKEOVER_MODES: readonly ModeName[] = LAB_MODES;
export type ModeName = (typeof MODE_NAMES)[number];

/** The MCU composes at 15 fps: the interval between frames when nothing is wrong. */
export const NOMINAL_FRAME_MS = 1000 / 15;
/** "Steady media": no frame interval above this and no audio stall above that, for STEADY_MS. */
export const STEADY_VIDEO_MS = 200;
export const STEADY_AUDIO_MS = 150;
export const STEADY_MS = 1500;
export const STALL_THRESHOLDS = { videoMs: STEADY_VIDEO_MS, audioMs: STEADY_AUDIO_MS };
/** A stall starting this long after the kill is not the failover's own gap (that one starts at the kill). */
export const LATE_STALL_MS = 700;
export const BASELINE_TIMEOUT_MS = 20_000;
export const PROTECTION_TIMEOUT_MS = 30_000;
export const PROMOTION_TIMEOUT_MS = 15_000;
export const RECOVERY_TIMEOUT_MS = 25_000;
export const POLL_MS = 200;
/** The pages' signaling probe: one request per page this often (scripts/probe/signaling-probe.ts). */
export const PROBE_INTERVAL_MS = 50;
/**
 * The lab modes' heartbeat window (MCU_MISSED_HEARTBEATS): the product's default unless
 * BENCH_MISSED_HEARTBEATS says otherwise (a host crash is detected after missed x 10 ms and a
 * host probe left unanswered for 20 ms; a kill by the replication stream's end and a
 * port-unreachable probe). Death verdicts while the primary lived are counted as incidents, and fenced.
 */
export const LAB_MISSED_HEARTBEATS = process.env.BENCH_MISSED_HEARTBEATS ?? '3';
/** CPUs of the lab's server hosts and client host (BENCH_PIN_CPUS=0 turns the split off). */
export const LAB_CPUS = process.env.BENCH_PIN_CPUS === '0' ? null : splitCpus();
