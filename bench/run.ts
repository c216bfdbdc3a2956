/**
 * `npm run bench`: runs the benchmark scenarios against real `moat` processes,
 * prints what it measures, and writes the results into docs/benchmarks.md
 * (between the markers of each scenario). Not part of `npm test`, apart from a
 * quick smoke run of the harness (test/bench).
 *
 *   npm run bench                          every scenario, full size
 *   npm run bench -- --only durability     some scenarios (comma-separated)
 *   npm run bench -- --rounds 5            rounds per scenario (default 3)
 *   npm run bench -- --quick --no-write    small and short, docs untouched
 *   npm run bench -- --brokers moat,mosquitto   the brokers of the side-by-side rows
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machineDescription } from './lib/system.js';
import type { BenchContext, ScenarioReport } from './scenarios/context.js';
import { availableBrokers, type BrokerKind } from './lib/brokers.js';
import { COMPARISONS, compareBrokers } from './scenarios/compare.js';
import { durabilityScenario } from './scenarios/durability.js';
import { atRestScenario } from './scenarios/at-rest.js';
import { payloadScenario } from './scenarios/payload.js';
import { clusterScenario } from './scenarios/cluster.js';
import { clusterSoakScenario } from './scenarios/cluster-soak.js';
import { idleScenario } from './scenarios/idle.js';
import { judgeTargets } from './scenarios/targets.js';
import { tlsScenario } from './scenarios/tls.js';
import { restartScenario } from './scenarios/restart.js';

export const SCENARIOS: Record<string, (ctx: BenchContext) => Promise<ScenarioReport>> = {
  ...Object.fromEntries(COMPARISONS.map((def) => [def.id, (ctx: BenchContext) => compareBrokers(ctx, def)])),
  idle: idleScenario,
  tls: tlsScenario,
  restart: restartScenario,
  durability: durabilityScenario,
  'p2p-qos1-payload': payloadScenario,
  'p2p-qos1-at-rest': atRestScenario,
  cluster: clusterScenario,
  'cluster-soak': clusterSoakScenario,
};

const DOCS = path.join(fileURLToPath(new URL('../../', import.meta.url)), 'docs', 'benchmarks.md');

/** Replaces the text between `<!-- bench:{id} -->` and `<!-- /bench:{id} -->` (appends the section if missing). */
export function writeSection(docs: string, report: ScenarioReport, when: string): string {
  const begin = `<!-- bench:${report.id} -->`;
  const end = `<!-- /bench:${report.id} -->`;
  const body = [
    begin,
    `_${when}; ${machineDescription()}._`,
    '',
    report.setup,
    '',
    report.table,
    ...(report.errors.length > 0 ? ['', `**Problems found:** ${report.errors.join('; ')}`] : []),
    end,
  ].join('\n');
  const from = docs.indexOf(begin);
  const to = docs.indexOf(end);
  if (from >= 0 && to > from) return docs.slice(0, from) + body + docs.slice(to + end.length);
  return `${docs.trimEnd()}\n\n## ${report.title}\n\n${body}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      quick: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      brokers: { type: 'string' },
    },
  });
  const names = values.only ? values.only.split(',') : Object.keys(SCENARIOS);
  for (const name of names) if (!SCENARIOS[name]) throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  const twoCores = os.cpus().length >= 2;
  const ctx: BenchContext = {
    quick: values.quick,
    rounds: Number(values.rounds),
    brokerCpu: twoCores ? 0 : undefined,
    loadCpu: twoCores ? 1 : undefined,
    brokers: values.brokers ? (values.brokers.split(',') as BrokerKind[]) : availableBrokers(),
    log: (line) => process.stderr.write(`${line}\n`),
  };
  ctx.log(`machine: ${machineDescription()}${twoCores ? '; broker on CPU 0, load generator on CPU 1' : '; one CPU, nothing pinned'}`);
  const reports: ScenarioReport[] = [];
  for (const name of names) reports.push(await SCENARIOS[name]!(ctx));
  // The verdicts are written only from a run of every side-by-side row they judge (not the WebSocket ones), so they never mix runs.
  const targets = judgeTargets(reports);
  const everyRow = [...COMPARISONS.filter((d) => d.transport === undefined).map((d) => d.id), 'idle', 'tls'].every((id) => names.includes(id));
  if (targets && everyRow) reports.push(targets);
  else if (targets) ctx.log(`\ntargets (from this partial run, not written):\n${targets.table}`);

  if (values.json) process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
  else for (const r of reports) process.stdout.write(`\n## ${r.title}\n\n${r.setup}\n\n${r.table}\n${r.errors.length ? `\nProblems: ${r.errors.join('; ')}\n` : ''}`);
  if (!values['no-write'] && !values.quick) {
    let docs = readFileSync(DOCS, 'utf8');
    const when = new Date().toISOString().slice(0, 10);
    for (const r of reports) docs = writeSection(docs, r, when);
    writeFileSync(DOCS, docs);
    ctx.log(`results written to ${DOCS}`);
  }
  if (reports.some((r) => r.errors.length > 0)) process.exitCode = 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
