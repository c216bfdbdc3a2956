import { formatDuration } from './duration.js';

/**
 * Output for people: aligned tables and field lists. Every value is made safe to print first: a client identifier,
 * topic or ban reason comes from whoever connected, and a control character in it must not drive the terminal.
 * Bold headers only on a terminal that has not asked for NO_COLOR.
 */

export type Cell = string | number | boolean | null | undefined;

export interface Column<T> {
  header: string;
  value(item: T): Cell;
  /** Numbers read best right-aligned. */
  right?: boolean;
}

/** Control characters (C0, DEL, C1) as escapes: `\x1b`, `\n`. */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (ch) => {
    if (ch === '\n') return '\\n';
    if (ch === '\t') return '\\t';
    if (ch === '\r') return '\\r';
    return `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

export function cell(value: Cell): string {
  if (value === null || value === undefined || value === '') return '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return printable(String(value));
}

function useColour(): boolean {
  return process.stdout.isTTY === true && !process.env.NO_COLOR;
}

const bold = (text: string): string => (useColour() ? `\u001b[1m${text}\u001b[0m` : text);

/** Characters as a terminal shows them (code points, not UTF-16 units). */
const width = (text: string): number => [...text].length;

/** A table with a header row; columns two spaces apart, no trailing spaces. */
export function table<T>(columns: ReadonlyArray<Column<T>>, items: readonly T[]): string {
  const rows = items.map((item) => columns.map((c) => cell(c.value(item))));
  const widths = columns.map((c, i) => Math.max(width(c.header), ...rows.map((r) => width(r[i]!))));
  const line = (cells: string[], header: boolean): string => cells.map((text, i) => {
    const last = i === cells.length - 1;
    const pad = ' '.repeat(widths[i]! - width(text));
    const shown = header ? bold(text) : text;
    if (columns[i]!.right) return pad + shown;
    return last ? shown : shown + pad;
  }).join('  ');
  return [line(columns.map((c) => c.header), true), ...rows.map((r) => line(r, false))].join('\n');
}

/** `label  value` lines, labels aligned: one item shown in full. */
export function fields(pairs: ReadonlyArray<readonly [string, Cell]>): string {
  const labelWidth = Math.max(0, ...pairs.map(([label]) => width(label)));
  return pairs.map(([label, value]) => `${label.padEnd(labelWidth)}  ${cell(value)}`).join('\n');
}

/** A titled block (a sub-table under an item's fields). */
export function section(title: string, body: string): string {
  return `\n\n${bold(title)}\n${body}`;
}

/** An ISO time as `2026-12-06 10:00:00Z`; a missing one as `-`. */
export function time(iso: unknown): string | null {
  if (typeof iso !== 'string') return null;
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** How long ago an ISO time was: `3m 12s`. */
export function age(iso: unknown, now = Date.now()): string | null {
  if (typeof iso !== 'string') return null;
  const at = Date.parse(iso);
  return Number.isNaN(at) ? null : formatDuration((now - at) / 1000);
}

/** Role and group bindings: `name`, or `name:priority`. */
export function bindings(list: unknown): string {
  if (!Array.isArray(list)) return '';
  return list.map((b: unknown) => {
    if (typeof b === 'string') return b;
    const { name, priority } = b as { name: string; priority?: number };
    return priority === undefined ? name : `${name}:${priority}`;
  }).join(', ');
}

/** Nested objects (limits, capabilities) as `a.b  value` lines. */
export function flatten(value: unknown, prefix = ''): Array<[string, Cell]> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return [[prefix, Array.isArray(value) ? value.map((v) => String(v)).join(', ') : (value as Cell)]];
  }
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
}
