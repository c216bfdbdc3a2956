import type { Broker } from '../broker/broker.js';
import type { AuditLog } from '../security/audit.js';
import type { Security } from '../security/index.js';
import { AdminAuth } from './auth.js';
import { readiness } from './health.js';
import { createMetrics } from './metrics.js';
import type { AdminOptions } from './options.js';
import { AdminHttpServer, type Route } from './server.js';

export { DEFAULT_ADMIN_PORT, DEFAULT_ADMIN_ROLE, type AdminOptions, type AdminScope, type AdminToken } from './options.js';

/**
 * The admin listener (docs/operations.md): health for load balancers, metrics for Prometheus, and the API, on an
 * HTTP(S) port of its own. It reads the broker and its security layer; the broker core knows nothing of it.
 */
export interface AdminListener {
  /** Binds the port; rejects with a ListenError naming the admin listener. */
  listen(): Promise<{ address: string; port: number }>;
  /** Where it is bound, once it is. */
  readonly address: { address: string; port: number } | undefined;
  close(): Promise<void>;
}

export interface AdminDependencies {
  options: AdminOptions;
  broker: Broker;
  security: Security;
  audit: AuditLog;
  logger: { error(obj: object, msg?: string): void };
}

export function createAdmin({ options, broker, security, audit, logger }: AdminDependencies): AdminListener {
  const auth = new AdminAuth({
    tokens: options.tokens,
    adminRole: options.adminRole,
    // The broker's own chain, the guard around it: an admin user is who MQTT says, and guessing is banned alike.
    authenticate: security.hooks.find((h) => h.authenticate)?.authenticate,
    acl: security.acl,
    banned: (address) => security.guard?.bans.forAddress(address) !== undefined,
  });
  const registry = createMetrics({ broker, guard: security.guard });
  const routes: Route[] = [
    { method: 'GET', path: '/healthz', access: 'open', audited: false, handle: () => ({ json: { status: 'ok' } }) },
    {
      method: 'GET', path: '/readyz', access: 'open', audited: false,
      handle: () => {
        const r = readiness(broker);
        return { status: r.ready ? 200 : 503, json: r.ready ? { status: 'ready' } : { status: 'not ready', reasons: r.reasons } };
      },
    },
    {
      method: 'GET', path: '/metrics', access: () => (options.metricsAuth ? 'metrics' : 'open'),
      handle: async () => ({ text: await registry.metrics(), contentType: registry.contentType }),
    },
    {
      method: 'GET', path: '/api/v1/broker', access: 'read',
      handle: () => ({
        json: {
          version: broker.version,
          uptime_seconds: Math.floor((Date.now() - broker.stats.startedAt) / 1000),
          listeners: broker.addresses,
          ready: readiness(broker).ready,
        },
      }),
    },
  ];
  const server = new AdminHttpServer(options, routes, auth, audit, (err) => logger.error({ err: err.message }, 'admin request failed'));
  return {
    listen: () => server.listen(),
    get address() {
      return server.address;
    },
    close: () => server.close(),
  };
}
