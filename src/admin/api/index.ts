import type { Route } from '../server.js';
import { OPENAPI_DOCUMENT } from '../openapi.js';
import { WorkersMissing } from '../view.js';
import { banRoutes } from './bans.js';
import { brokerRoutes } from './broker.js';
import { clientRoutes } from './clients.js';
import type { ApiContext } from './common.js';
import { groupRoutes } from './groups.js';
import { roleRoutes } from './roles.js';
import { sessionRoutes } from './sessions.js';
import { topicRoutes } from './topics.js';
import { userRoutes } from './users.js';

export type { ApiContext, ApiReloadResult, ApiServer } from './common.js';
export { localAdminBackend } from './local.js';

/**
 * The REST API under /api/v1/ (docs/operations.md), one module per resource; its OpenAPI document is
 * src/admin/openapi.ts. GET /api/v1/broker itself is the admin listener's (it reads a BrokerView).
 */
export function apiRoutes(context: ApiContext): Route[] {
  const routes: Route[] = [
    { method: 'GET', path: '/api/v1/openapi.json', access: 'read', handle: () => ({ json: OPENAPI_DOCUMENT }) },
    ...brokerRoutes(context), ...clientRoutes(context), ...sessionRoutes(context), ...topicRoutes(context), ...banRoutes(context),
    ...userRoutes(context), ...groupRoutes(context), ...roleRoutes(context),
  ];
  return routes.map(answeringForMissingWorkers);
}

/** An answer that needs workers that did not answer in time is 503, naming them (multi-core mode). */
function answeringForMissingWorkers(route: Route): Route {
  return {
    ...route,
    handle: async (request) => {
      try {
        return await route.handle(request);
      } catch (err) {
        if (!(err instanceof WorkersMissing)) throw err;
        return { status: 503, json: { error: err.message, partial: true, workers_missing: err.missing } };
      }
    },
  };
}
