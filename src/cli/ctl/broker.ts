import { stringify as toYaml } from 'yaml';
import type { Command, Resource } from './command.js';
import { ApiError } from './http.js';
import { fields, flatten, section, table } from './table.js';
import { formatDuration } from './duration.js';

/** The broker (/api/v1/broker, its configuration and reload), the health probes and the Prometheus metrics. */

interface BrokerJson {
  version: string;
  uptime_seconds: number;
  ready: boolean;
  listeners: Array<{ name?: string; host?: string; port?: number; path?: string }>;
  connected_clients?: number;
  sessions?: number;
  limits?: Record<string, unknown>;
  capabilities?: Record<string, unknown>;
  workers?: Array<{ index: number; pid?: number; state: string }>;
}

interface ReloadJson {
  ok: boolean;
  applied: string[];
  restart_needed: string[];
  error?: string;
}

const brokerCommands: Command[] = [
  {
    name: 'info', summary: 'version, uptime, listeners, clients, limits and capabilities',
    run: async (context) => {
      const b = await context.api.get<BrokerJson>('/api/v1/broker');
      let human = fields([
        ['version', b.version], ['uptime', formatDuration(b.uptime_seconds)], ['ready', b.ready],
        ...(b.connected_clients !== undefined ? [['connected clients', b.connected_clients] as [string, number]] : []),
        ...(b.sessions !== undefined ? [['sessions', b.sessions] as [string, number]] : []),
      ]);
      human += section('Listeners', table([
        { header: 'NAME', value: (l: BrokerJson['listeners'][number]) => l.name },
        { header: 'ADDRESS', value: (l) => l.path ?? `${l.host ?? ''}:${l.port ?? ''}` },
      ], b.listeners));
      if (b.workers) {
        human += section('Workers', table([
          { header: 'INDEX', value: (w: NonNullable<BrokerJson['workers']>[number]) => w.index, right: true },
          { header: 'PID', value: (w) => w.pid, right: true },
          { header: 'STATE', value: (w) => w.state },
        ], b.workers));
      }
      if (b.limits) human += section('Limits', fields(flatten(b.limits)));
      if (b.capabilities) human += section('Capabilities', fields(flatten(b.capabilities)));
      return { json: b, human };
    },
  },
  {
    name: 'config', summary: 'the configuration in force, secrets redacted (YAML; JSON with --json)',
    run: async (context) => {
      const config = await context.api.get<unknown>('/api/v1/broker/config');
      return { json: config, human: toYaml(config).trimEnd() };
    },
  },
  {
    name: 'reload', summary: 'read the configuration file again and apply it, as SIGHUP does',
    run: async (context) => {
      const answer = await context.api.call<ReloadJson>('POST', '/api/v1/broker/reload');
      const human = fields([['applied', answer.applied.join(', ') || 'nothing changed'], ['restart needed', answer.restart_needed.join(', ') || 'no']]);
      return { json: answer, human };
    },
  },
];

const health: Command = {
  name: '', summary: 'the liveness (/healthz) and readiness (/readyz) probes; exit status 1 unless both are fine',
  run: async (context) => {
    const [live, ready] = await Promise.all([context.api.request('GET', '/healthz'), context.api.request('GET', '/readyz')]);
    for (const probe of [live, ready]) {
      if (probe.json === undefined || (probe.status !== 200 && probe.status !== 503)) throw new ApiError(probe.status, probe.text.trim() || 'not a health answer', probe.text);
    }
    const readiness = ready.json as { status: string; reasons?: string[] };
    const human = fields([
      ['healthz', (live.json as { status: string }).status],
      ['readyz', readiness.reasons?.length ? `${readiness.status}: ${readiness.reasons.join('; ')}` : readiness.status],
    ]);
    return { json: { healthz: live.json, readyz: ready.json }, human, exitCode: live.status === 200 && ready.status === 200 ? 0 : 1 };
  },
};

const metrics: Command = {
  name: '', args: '[PREFIX]', summary: 'the Prometheus metrics as they are scraped (only those whose name starts with PREFIX)',
  run: async (context) => {
    const text = await context.api.text('/metrics');
    const prefix = context.args[0];
    if (prefix === undefined) return { raw: text };
    // # HELP and # TYPE lines name their metric as the third word.
    const kept = text.split('\n').filter((line) => (line.startsWith('#') ? line.split(' ')[2] ?? '' : line).startsWith(prefix));
    return { raw: kept.length > 0 ? `${kept.join('\n')}\n` : '' };
  },
};

export const broker: Resource = { name: 'broker', summary: 'the broker: info, config, reload', commands: brokerCommands };
export const healthResource: Resource = { name: 'health', summary: 'liveness and readiness probes', commands: [health] };
export const metricsResource: Resource = { name: 'metrics', summary: 'Prometheus metrics, raw text', commands: [metrics] };
