import winston from 'winston';

/** Context fields carried on every line of a child logger (room, participant, epoch, ...). */
export type LogContext = Record<string, string | number | boolean | undefined>;

export type Logger = winston.Logger;

const production = process.env.NODE_ENV === 'production';

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

const root = winston.createLogger({
  level: process.env.LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'warn' : 'info'),
  format: production ? productionFormat : developmentFormat,
  defaultMeta: { pid: process.pid, role: process.env.MCU_ROLE },
  // stderr keeps stdout free for tools that print results (benchmarks, status).
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] })],
});

/** The one logger factory: a child logger per module, with optional context on every line. */
export function createLogger(module: string, context: LogContext = {}): Logger {
  return root.child({ module, ...context });
}

/** Changes the process-wide role shown on every log line (standby becomes primary). */
export function setLogRole(role: string): void {
  root.defaultMeta = { ...(root.defaultMeta as object), role };
}
