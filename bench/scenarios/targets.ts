import { fmt } from '../lib/system.js';
import type { CompareReport, CompareRow } from './compare.js';
import type { ScenarioReport } from './context.js';
import type { IdleRow } from './idle.js';

/**
 * The goals of the benchmark issue, judged on the medians of one run. Where a peer
 * has two configurations, Moat is held to the better figure of either.
 */

interface Verdict {
  target: string;
  moat: string;
  against: string;
  met: boolean | undefined;
}

const MOSQUITTO = ['mosquitto', 'mosquitto-nodelay'];
const AEDES = ['aedes', 'aedes-nodelay'];

function rowsOf(reports: ScenarioReport[], id: string): CompareRow[] | undefined {
  return reports.find((r) => r.id === id)?.data as CompareRow[] | undefined;
}

function best(rows: CompareRow[], kinds: string[], figure: (r: CompareRow) => number, lowest: boolean): number | undefined {
  const values = rows.filter((r) => kinds.includes(r.broker)).map(figure);
  if (values.length === 0) return undefined;
  return lowest ? Math.min(...values) : Math.max(...values);
}

export function judgeTargets(reports: ScenarioReport[]): ScenarioReport | undefined {
  const verdicts: Verdict[] = [];
  const cpuRows: Array<[string, string]> = [['fanin-qos0', 'QoS 0 fan-in'], ['fanout-qos0', 'QoS 0 fan-out'], ['fanin-qos1', 'QoS 1 fan-in']];
  for (const [id, name] of cpuRows) {
    const rows = rowsOf(reports, id);
    const moat = rows?.find((r) => r.broker === 'moat');
    const peer = rows && best(rows, MOSQUITTO, (r) => r.cpu.median, true);
    if (!moat || peer === undefined) continue;
    verdicts.push({ target: `${name}: CPU µs per delivery ≤ Mosquitto's (one core)`, moat: fmt(moat.cpu.median, 2), against: fmt(peer, 2), met: moat.cpu.median <= peer });
  }
  for (const [id, name] of [['p2p-qos1', 'QoS 1 point-to-point'], ['p2p-qos2', 'QoS 2 point-to-point']] as const) {
    const rows = rowsOf(reports, id);
    const moat = rows?.find((r) => r.broker === 'moat');
    if (!rows || !moat) continue;
    const rate = best(rows, MOSQUITTO, (r) => r.rate.median, false);
    const p99 = best(rows, MOSQUITTO, (r) => r.p99.median, true);
    if (rate !== undefined) verdicts.push({ target: `${name}: msg/s ≥ Mosquitto's`, moat: fmt(moat.rate.median), against: fmt(rate), met: moat.rate.median >= rate });
    if (p99 !== undefined) verdicts.push({ target: `${name}: p99 latency ≤ Mosquitto's (ms)`, moat: fmt(moat.p99.median, 2), against: fmt(p99, 2), met: moat.p99.median <= p99 });
  }
  const latencyReport = reports.find((r) => r.id === 'latency') as CompareReport | undefined;
  const latency = latencyReport?.data.find((r) => r.broker === 'moat');
  if (latency) {
    // The floor beside the goal: what a Node.js process doing no MQTT work measured in the same rounds.
    const relay = latencyReport!.data.find((r) => r.broker === 'node-relay');
    verdicts.push({
      target: 'Latency at 1,000 msg/s: p99 ≤ 0.5 ms', moat: fmt(latency.p99.median, 3),
      against: relay ? `0.5 (Node.js relay, no MQTT work: ${fmt(relay.p99.median, 3)})` : '0.5', met: latency.p99.median <= 0.5,
    });
  }
  const idle = reports.find((r) => r.id === 'idle')?.data as { rows: IdleRow[]; notRun: number[]; fileLimit: number } | undefined;
  for (const count of idle?.notRun ?? []) {
    verdicts.push({ target: `${fmt(count)} idle connections held by one process`, moat: `not run: hard open-file limit ${fmt(idle!.fileLimit)}`, against: '', met: undefined });
  }
  for (const row of idle?.rows.filter((r) => r.broker === 'moat') ?? []) {
    verdicts.push({ target: `${fmt(row.connections)} idle connections: ≤ 4 KiB RSS each on average, all held`, moat: `${fmt(row.kibPerConnection.median, 2)} KiB, ${row.failed} failed`, against: '4 KiB, 0 failed', met: row.kibPerConnection.median <= 4 && row.failed === 0 });
    verdicts.push({ target: `${fmt(row.connections)} idle connections: ≤ 4 KiB RSS for each one more`, moat: `${fmt(row.marginalKibPerConnection.median, 2)} KiB`, against: '4 KiB', met: row.marginalKibPerConnection.median <= 4 });
  }
  for (const id of ['fanin-qos0', 'fanout-qos0', 'fanin-qos1', 'p2p-qos1', 'p2p-qos2']) {
    const rows = rowsOf(reports, id);
    const moat = rows?.find((r) => r.broker === 'moat');
    const aedes = rows && best(rows, AEDES, (r) => r.rate.median, false);
    if (!moat || aedes === undefined) continue;
    verdicts.push({ target: `${id}: ≥ 2× Aedes' rate`, moat: fmt(moat.rate.median), against: `2 × ${fmt(aedes)}`, met: moat.rate.median >= 2 * aedes });
  }
  const twoCores = rowsOf(reports, 'fanin-qos0-2cores');
  const multi = twoCores?.find((r) => r.broker === 'moat-2-workers');
  const mosquittoTwoCores = twoCores && best(twoCores, MOSQUITTO, (r) => r.rate.median, false);
  if (multi && mosquittoTwoCores !== undefined) {
    verdicts.push({
      target: 'QoS 0 fan-in with the second core allowed (multi-core mode): ≥ 1.5× Mosquitto\'s deliveries/s',
      moat: fmt(multi.rate.median), against: `1.5 × ${fmt(mosquittoTwoCores)}`, met: multi.rate.median >= 1.5 * mosquittoTwoCores,
    });
  }
  if (verdicts.length === 0) return undefined;
  const table = [
    '| target | Moat | against | met |',
    '|---|---|---|---|',
    ...verdicts.map((v) => `| ${v.target} | ${v.moat} | ${v.against} | ${v.met === undefined ? 'not measured' : v.met ? 'yes' : '**no**'} |`),
  ].join('\n');
  return {
    id: 'targets', title: 'Targets', table, errors: [], data: verdicts,
    setup: 'The goals, judged on the medians of the rows above from the same run; where a peer ran in two configurations, the better figure of either counts.',
  };
}
