/**
 * The benchmarks' command lines: typed options with defaults and ranges, `--help`, and one way
 * to refuse a bad value (a message naming the option, exit code 2).
 *
 *   const args = parseBenchArgs({
 *     command: 'scripts/bench/detection.ts',
 *     summary: 'Failure detection and replication lag.',
 *     options: { trials: { type: 'int', default: 20, min: 1, max: 200, help: 'trials per failure type' } },
 *   });
 *   args.trials; // number
 */
import { parseArgs } from 'node:util';
import { McuError } from '../../../mcu/src/core/errors.ts';

interface Described {
  /** One line for --help. */
  help: string;
}

export interface IntOption extends Described {
  type: 'int';
  default?: number;
  min: number;
  max: number;
}

export interface NumberOption extends Described {
  type: 'number';
  default?: number;
  min: number;
  max: number;
}

export interface StringOption extends Described {
  type: 'string';
  default?: string;
}

/** Comma-separated names, each one of `choices` when given. */
export interface ListOption extends Described {
  type: 'list';
  default?: readonly string[];
  choices?: readonly string[];
  /** Shown in --help instead of the default when the default is decided at run time. */
  defaultText?: string;
}

/** Comma-separated integers, each in [min, max]. */
export interface IntListOption extends Described {
  type: 'int-list';
  default?: readonly number[];
  min: number;
  max: number;
}

/** Present or not. */
export interface FlagOption extends Described {
  type: 'flag';
}

export type OptionSpec = IntOption | NumberOption | StringOption | ListOption | IntListOption | FlagOption;

/** Without a default, an option not given is undefined. */
type Defaulted<S, T> = S extends { default: unknown } ? T : T | undefined;

export type OptionValue<S extends OptionSpec> = S extends FlagOption
  ? boolean
  : S extends IntOption | NumberOption
    ? Defaulted<S, number>
    : S extends IntListOption
      ? Defaulted<S, number[]>
      : S extends ListOption
        ? Defaulted<S, S extends { choices: ReadonlyArray<infer C> } ? C[] : string[]>
        : Defaulted<S, string>;

export type BenchArgs<O extends Record<string, OptionSpec>> = { [K in keyof O]: OptionValue<O[K]> };

export interface BenchCommand<O extends Record<string, OptionSpec>> {
  /** The script, as run from the project root (for the usage line). */
  command: string;
  /** What the benchmark measures, for --help. */
  summary: string;
  options: O;
}

/** A value the command line cannot have: reported with the usage hint, exit code 2. */
export class BenchArgsError extends McuError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/**
 * Parses `argv` (default: this process's arguments) against `spec.options`. `--help` prints the
 * options and exits 0; a bad or unknown option prints why and exits 2.
 */
export function parseBenchArgs<const O extends Record<string, OptionSpec>>(spec: BenchCommand<O>, argv: string[] = process.argv.slice(2)): BenchArgs<O> {
  try {
    const parsed = parseBenchArgv(spec, argv);
    if (parsed === 'help') {
      console.log(benchHelp(spec));
      process.exit(0);
    }
    return parsed;
  } catch (err) {
    if (!(err instanceof BenchArgsError)) throw err;
    console.error(`${spec.command}: ${err.message} (--help lists the options)`);
    process.exit(2);
  }
}

/** The parsing itself, without exiting: the options' values, or 'help'. Throws BenchArgsError. */
export function parseBenchArgv<const O extends Record<string, OptionSpec>>(spec: BenchCommand<O>, argv: string[]): BenchArgs<O> | 'help' {
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, option] of Object.entries(spec.options)) config[name] = { type: option.type === 'flag' ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: config, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new BenchArgsError((err as Error).message);
  }
  if (values.help === true) return 'help';
  const out: Record<string, unknown> = {};
  for (const [name, option] of Object.entries(spec.options)) {
    const raw = values[name];
    out[name] = option.type === 'flag' ? raw === true : raw === undefined ? copyDefault(option) : parseValue(name, option, raw as string);
  }
  return out as BenchArgs<O>;
}

/** The --help text. */
export function benchHelp(spec: BenchCommand<Record<string, OptionSpec>>): string {
  const rows: Array<[string, string]> = Object.entries(spec.options).map(([name, option]) => [`--${name}${placeholder(option)}`, `${option.help}${constraint(option)}${defaultText(option)}`]);
  rows.push(['-h, --help', 'this help']);
  const width = Math.max(...rows.map(([left]) => left.length));
  return [`Usage: node --import tsx ${spec.command} [options]`, '', spec.summary, '', 'Options:', ...rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`)].join('\n');
}

function parseValue(name: string, option: Exclude<OptionSpec, FlagOption>, raw: string): unknown {
  switch (option.type) {
    case 'string':
      return raw;
    case 'int':
    case 'number':
      return parseNumber(name, option, raw);
    case 'int-list':
      return items(raw).map((item) => parseNumber(name, { type: 'int', min: option.min, max: option.max, help: option.help }, item));
    case 'list': {
      const names = items(raw);
      const unknown = option.choices ? names.filter((n) => !option.choices!.includes(n)) : [];
      if (unknown.length > 0) throw new BenchArgsError(`--${name}: unknown ${unknown.map((n) => `"${n}"`).join(', ')} (one or more of ${option.choices!.join(', ')})`);
      return names;
    }
  }
}

function parseNumber(name: string, option: IntOption | NumberOption, raw: string): number {
  const value = raw.trim() === '' ? NaN : Number(raw);
  const ok = option.type === 'int' ? Number.isInteger(value) : Number.isFinite(value);
  if (!ok || value < option.min || value > option.max) {
    throw new BenchArgsError(`--${name} must be ${option.type === 'int' ? 'an integer' : 'a number'} in [${option.min}, ${option.max}] (got ${raw})`);
  }
  return value;
}

function items(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function copyDefault(option: Exclude<OptionSpec, FlagOption>): unknown {
  return Array.isArray(option.default) ? [...option.default] : option.default;
}

function placeholder(option: OptionSpec): string {
  switch (option.type) {
    case 'flag':
      return '';
    case 'int':
      return ' <int>';
    case 'number':
      return ' <number>';
    case 'string':
      return ' <text>';
    case 'list':
      return ' <a,b,...>';
    case 'int-list':
      return ' <n,m,...>';
  }
}

function constraint(option: OptionSpec): string {
  if (option.type === 'int' || option.type === 'number' || option.type === 'int-list') return ` (${option.min}..${option.max})`;
  if (option.type === 'list' && option.choices) return ` (of ${option.choices.join(', ')})`;
  return '';
}

function defaultText(option: OptionSpec): string {
  if (option.type === 'list' && option.defaultText !== undefined) return `; default: ${option.defaultText}`;
  if (option.type === 'flag' || option.default === undefined) return '';
  return `; default: ${Array.isArray(option.default) ? option.default.join(',') : String(option.default)}`;
}
