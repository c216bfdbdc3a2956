import { pino, type Logger as PinoLogger } from 'pino';
import pretty from 'pino-pretty';

/** Keys every line has, shown in their own places (time, level, message) or not at all (pid). */
const NOT_FIELDS = new Set(['time', 'level', 'msg', 'pid', 'hostname']);

/** A value as it reads after `key=`: bare when it is one plain word or a number, JSON (quoted, escaped) otherwise. */
function fieldValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=\\\p{Cc}]+$/u.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string') {
    const err = value as { type?: unknown; message: string };
    return JSON.stringify(typeof err.type === 'string' && err.type !== 'Error' ? `${err.type}: ${err.message}` : err.message);
  }
  return JSON.stringify(value) ?? String(value);
}

/** One line per event: the message, then the event's fields as `key=value` (the time and level come first, from pino-pretty). */
export function prettyLine(log: Record<string, unknown>, messageKey: string): string {
  const msg = log[messageKey];
  let line = typeof msg === 'string' ? msg.replace(/[\r\n]+/g, ' ') : msg === undefined ? '' : String(msg);
  for (const key of Object.keys(log)) {
    const value = log[key];
    if (key === messageKey || NOT_FIELDS.has(key) || value === undefined) continue;
    line += `${line === '' ? '' : ' '}${key}=${fieldValue(value)}`;
  }
  return line;
}

/** Structured JSON logs; human-readable when writing to a terminal (or when asked), one line per event. */
export function createLogger(level: string, format: 'auto' | 'json' | 'pretty'): PinoLogger {
  const human = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  const options = { level, base: { pid: process.pid } };
  // Synchronous writes: log lines are never lost on exit, and logging is off the hot path.
  if (!human) return pino(options, pino.destination({ dest: 1, sync: true }));
  return pino(options, pretty({
    colorize: process.stdout.isTTY === true,
    translateTime: 'SYS:standard',
    ignore: 'pid,hostname',
    hideObject: true, // the fields are on the message line, written by prettyLine (singleLine would drop the line end then)
    messageFormat: (log, messageKey) => prettyLine(log, messageKey),
  }));
}

/** JSON lines appended to a file (the audit log when it is kept apart); `close` ends the file when it is replaced. */
export function createFileLogger(file: string): { logger: PinoLogger; close(): void } {
  const destination = pino.destination({ dest: file, sync: true, append: true, mkdir: true });
  return { logger: pino({ level: 'info', base: { pid: process.pid } }, destination), close: () => destination.end() };
}
