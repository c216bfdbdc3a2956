import { pino, type Logger as PinoLogger } from 'pino';
import pretty from 'pino-pretty';

/** Structured JSON logs; human-readable when writing to a terminal (or when asked). */
export function createLogger(level: string, format: 'auto' | 'json' | 'pretty'): PinoLogger {
  const human = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  const options = { level, base: { pid: process.pid } };
  // Synchronous writes: log lines are never lost on exit, and logging is off the hot path.
  if (!human) return pino(options, pino.destination({ dest: 1, sync: true }));
  return pino(options, pretty({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:standard', ignore: 'pid' }));
}

/** JSON lines appended to a file (the audit log when it is kept apart). */
export function createFileLogger(file: string): PinoLogger {
  return pino({ level: 'info', base: { pid: process.pid } }, pino.destination({ dest: file, sync: true, append: true, mkdir: true }));
}
