/**
 * Topic filter relations used by authorization (pure functions, MQTT 4.7).
 * A wildcard in the first level never matches a topic starting with `$`
 * [MQTT-4.7.2-1], so `#` grants nothing under `$SYS`.
 */

/** Does `filter` match the topic name `topic`? */
export function matchesTopic(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (t[0]!.startsWith('$') && (f[0] === '#' || f[0] === '+')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === '#') return true; // also the parent: `a/#` matches `a` [MQTT-4.7.1-2]
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * Does `granted` match every topic that `requested` can match? This is how a
 * subscription is judged: a client allowed `a/b` only is refused `#`, `a/+`
 * and `+/b`, while one allowed `a/#` may subscribe to `a/+/c`.
 */
export function covers(granted: string, requested: string): boolean {
  const g = granted.split('/');
  // A topic name is never empty, so `#` reaches exactly what `+/#` reaches, and `/#` what `/+/#` reaches.
  const r = requested === '#' ? ['+', '#'] : requested === '/#' ? ['', '+', '#'] : requested.split('/');
  if (r[0]!.startsWith('$') && (g[0] === '#' || g[0] === '+')) return false;
  // A requested first-level wildcard reaches topics that do not start with `$` only, as a granted one does.
  for (let i = 0; ; i++) {
    if (i === g.length) return i === r.length;
    const gl = g[i]!;
    if (gl === '#') return true;
    if (i === r.length) return false;
    const rl = r[i]!;
    if (rl === '#') return false; // reaches deeper topics (and the parent) than a non-# level can grant
    if (gl === '+') continue; // covers a literal or `+`
    if (rl === '+' || rl !== gl) return false;
  }
}
