import type { Route } from '../server.js';
import { OPENAPI_DOCUMENT } from '../openapi.js';
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

/**
 * The REST API under /api/v1/ (docs/operations.md), one module per resource; its OpenAPI document is
 * src/admin/openapi.ts. GET /api/v1/broker itself is the admin listener's (it reads a BrokerView).
 */
export function apiRoutes(context: ApiContext): Route[] {
  return [
    { method: 'GET', path: '/api/v1/openapi.json', access: 'read', handle: () => ({ json: OPENAPI_DOCUMENT }) },
    ...brokerRoutes(context), ...clientRoutes(context), ...sessionRoutes(context), ...topicRoutes(context), ...banRoutes(context),
    ...userRoutes(context), ...groupRoutes(context), ...roleRoutes(context),
  ];
}
