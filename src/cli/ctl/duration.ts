/**
 * Durations as people type them (`30s`, `10m`, `1h`, `7d`, `2w`, `1h30m`, or plain seconds) and ages as tables
 * show them. The API takes seconds.
 */

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** Seconds in `text`; throws with what was expected for anything else (zero included: a ban for no time is a mistake). */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  let seconds: number;
  if (/^\d+$/.test(trimmed)) seconds = Number(trimmed);
  else if (/^(\d+[smhdw])+$/.test(trimmed)) {
    seconds = 0;
    for (const [, amount, unit] of trimmed.matchAll(/(\d+)([smhdw])/g)) seconds += Number(amount) * UNIT_SECONDS[unit!]!;
  } else {
    throw new Error(`"${text}" is not a duration: expected a number with a unit, such as 30s, 10m, 1h, 7d, 2w or 1h30m`);
  }
  if (!Number.isSafeInteger(seconds) || seconds <= 0) throw new Error(`"${text}": a duration must be above zero`);
  return seconds;
}

/** `3d 4h`, `12m 5s`, `40s`: the two largest units, enough to read at a glance. */
export function formatDuration(totalSeconds: number): string {
  let rest = Math.max(0, Math.floor(totalSeconds));
  const parts: string[] = [];
  for (const unit of ['d', 'h', 'm', 's']) {
    const size = UNIT_SECONDS[unit]!;
    if (rest >= size || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}
