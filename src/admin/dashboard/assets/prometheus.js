// Just enough of the Prometheus text format for the overview: each sample's value, summed by metric name over
// its labels (or over the samples whose labels match).

/** Map of metric name → samples [{ labels, value }]. */
export function parseMetrics(text) {
  const metrics = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    const value = Number(match[4]);
    if (!metrics.has(match[1])) metrics.set(match[1], []);
    metrics.get(match[1]).push({ labels, value });
  }
  return metrics;
}

/** The sum of a metric's samples (those whose labels include `where`); undefined when the broker does not have it. */
export function total(metrics, name, where = {}) {
  const samples = metrics.get(name);
  if (!samples) return undefined;
  let sum = 0;
  for (const sample of samples) {
    if (Object.entries(where).every(([k, v]) => sample.labels[k] === v)) sum += sample.value;
  }
  return sum;
}
