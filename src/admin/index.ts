import type { Broker } from '../broker/broker.js';
import type { AuditLog } from '../security/audit.js';
import type { Security } from '../security/index.js';
import { AdminAuth, localAdminUsers, type AdminUsers } from './auth.js';
import { createMetrics } from './metrics.js';
import type { AdminOptions } from './options.js';
import { AdminHttpServer, type Route } from './server.js';
import { localBrokerView, type BrokerView } from './view.js';
import { apiRoutes, localAdminBackend, type ApiServer } from './api/index.js';
import { dashboardRoutes } from './dashboard/index.js';
import { EMPTY_FEED, eventRoutes, type SecurityEventFeed } from './events.js';

export { DEFAULT_ADMIN_PORT, DEFAULT_ADMIN_ROLE, type AdminOptions, type AdminScope, type AdminToken } from './options.js';
export { localAdminUsers, type AdminLogin, type AdminUsers, type UserVerdict } from './auth.js';
export { brokerFigures, processFigures, type BrokerFigures, type ProcessFigures, type ScrapeFigures } from './figures.js';
export { apiRoutes, localAdminBackend, type ApiContext, type ApiReloadResult, type ApiServer } from './api/index.js';
export { OPENAPI_DOCUMENT } from './openapi.js';
export {
  localBrokerView, WorkersMissing, type AdminBackend, type BrokerInfo, type BrokerView, type ClientDetail, type Found, type Gathered, type RetainedView,
  type RuntimeChanges, type RuntimeItemJson, type WorkerState,
} from './view.js';
export { isSecurityEvent, SecurityEvents, teeAudit, type SecurityEvent, type SecurityEventFeed, type SecurityEventsPage } from './events.js';
export { DASHBOARD_CSP } from './dashboard/index.js';

/**
 * The admin listener (docs/operations.md): health for load balancers, metrics for Prometheus, and the API, on an
 * HTTP(S) port of its own. It reads the broker through a `BrokerView` (this process's broker, or in multi-core mode
 * the primary's view over the workers) and judges users through `AdminUsers`; the broker core knows nothing of it.
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
  /** The server around the broker (src/server): the configuration in force and reload, for /api/v1/broker/config and /reload. */
  server?: ApiServer;
  /** The security feed (GET /api/v1/events): a `SecurityEvents` that `audit` records into (src/server tees them). */
  events?: SecurityEventFeed;
}

/** One process: the admin listener over this process's broker and security layer. */
export function createAdmin({ options, broker, security, audit, logger, server, events }: AdminDependencies): AdminListener {
  const local = localBrokerView(broker, security.guard);
  return createAdminListener({
    options, audit, logger, ...(events && { events }),
    // GET /api/v1/broker with what one process also knows: clients, sessions, limits and capabilities.
    view: {
      ...local,
      info: async () => ({
        ...(await local.info()), connected_clients: broker.stats.connectedClients, sessions: broker.sessions.size,
        limits: broker.limits, capabilities: broker.capabilities,
      }),
    },
    // The REST API (src/admin/api/) on this process's broker; the primary of multi-core mode gives it the workers'.
    api: apiRoutes({ backend: localAdminBackend(broker, security), server, audit }),
    // The broker's own chain, the guard around it: an admin user is who MQTT says, and guessing is banned alike.
    users: localAdminUsers(security.hooks.find((h) => h.authenticate)?.authenticate, () => security.acl),
    banned: (address) => security.guard?.bans.forAddress(address) !== undefined,
  });
}

export interface AdminListenerParts {
  options: AdminOptions;
  view: BrokerView;
  users: AdminUsers;
  /** An address ban in force: the address is refused before its credentials are looked at. */
  banned?: (remoteAddress: string) => boolean;
  /** Further routes: the REST API under /api/v1/ (src/admin/api/). */
  api?: readonly Route[];
  /**
   * The security feed behind GET /api/v1/events and the dashboard's Security view. Absent: the feed is empty (multi-core
   * mode for now: the primary would need the workers' events). Whoever records into it also records the admin
   * listener's own refusals, through `audit`.
   */
  events?: SecurityEventFeed;
  audit: AuditLog;
  logger: { error(obj: object, msg?: string): void };
}

/** The admin listener over any `BrokerView`: one process, or the primary of multi-core mode. */
export function createAdminListener({ options, view, users, banned, api, events, audit, logger }: AdminListenerParts): AdminListener {
  const auth = new AdminAuth({ tokens: options.tokens, adminRole: options.adminRole, users, ...(banned && { banned }) });
  const registry = createMetrics(view);
  const routes: Route[] = [
    { method: 'GET', path: '/healthz', access: 'open', audited: false, handle: () => ({ json: { status: 'ok' } }) },
    {
      method: 'GET', path: '/readyz', access: 'open', audited: false,
      handle: () => {
        const r = view.readiness();
        return { status: r.ready ? 200 : 503, json: r.ready ? { status: 'ready' } : { status: 'not ready', reasons: r.reasons } };
      },
    },
    {
      method: 'GET', path: '/metrics', access: () => (options.metricsAuth ? 'metrics' : 'open'),
      handle: async () => ({ text: await registry.metrics(), contentType: registry.contentType }),
    },
    { method: 'GET', path: '/api/v1/broker', access: 'read', handle: async () => ({ json: await view.info() }) },
    ...eventRoutes(events ?? EMPTY_FEED),
    ...(api ?? []),
    // The dashboard's page and assets: open, but they hold no data; everything it shows comes from the API above.
    ...dashboardRoutes(),
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
