import winston from 'winston';
import { bootLogConfig, type LogConfig } from './config.ts';

/** Context fields carried on every line of a child logger (room, participant, epoch, ...). */
export type LogContext = Record<string, string | number | boolean | undefined>;

export type Logger = winston.Logger;

// Millisecond ISO timestamps: enough to rebuild a failover timeline from the logs of two processes.
const timestamp = winston.format.timestamp({ format: () => new Date().toISOString() });

const developmentFormat = winston.format.combine(
  timestamp,
  winston.format.printf((info) => {
    const { timestamp: ts, level, message, module, ...rest } = info as winston.Logform.TransformableInfo & {
      timestamp: string;
      module?: string;
    };
    const extra = Object.keys(rest).length > 0 ? ' ' + JSON.stringify(rest) : '';
    return `${ts} ${level.padEnd(5)} [${module ?? 'app'}] ${String(message)}${extra}`;
  }),
);

const productionFormat = winston.format.combine(timestamp, winston.format.json());

// Until the process has loaded its configuration (configureLogging): the environment's log settings.
const boot = bootLogConfig();

const root = winston.createLogger({
  level: boot.level,
  format: boot.format === 'json' ? productionFormat : developmentFormat,
  defaultMeta: { pid: process.pid, role: boot.role ?? undefined },
  // stderr keeps stdout free for tools that print results (benchmarks, status).
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] })],
});

/** The one logger factory: a child logger per module, with optional context on every line. */
export function createLogger(module: string, context: LogContext = {}): Logger {
  return root.child({ module, ...context });
}

/** Applies the log settings of the loaded configuration (a config file may change them) to every logger. */
export function configureLogging(config: LogConfig): void {
  root.level = config.level;
  root.format = config.format === 'json' ? productionFormat : developmentFormat;
  if (config.role !== null) setLogRole(config.role);
}

/** Changes the process-wide role shown on every log line (standby becomes primary). */
export function setLogRole(role: string): void {
  root.defaultMeta = { ...(root.defaultMeta as object), role };
}
