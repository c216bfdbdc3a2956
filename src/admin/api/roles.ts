import type { RuntimeSecurity } from '../../security/index.js';
import type { RoleChange } from '../../security/runtime-store.js';
import { HttpError } from '../server.js';
import type { ApiRoutes } from './common.js';
import { rulesOf, namedItemRoutes, text } from './runtime.js';

/** Runtime roles (security.runtime): ordered rules; create, read, change, delete (users and groups lose a deleted role). */

const FIELDS = ['rules', 'text_name', 'text_description'];

export function roleJson(runtime: RuntimeSecurity, name: string): Record<string, unknown> {
  const role = runtime.getRole(name);
  if (!role) throw new HttpError(404, `role "${name}" does not exist`);
  return {
    name, rules: role.rules, text_name: role.textName ?? null, text_description: role.textDescription ?? null,
    in_force: !runtime.isDeclared('role', name),
  };
}

function change(body: Record<string, unknown>): RoleChange {
  const rules = rulesOf(body.rules);
  const textName = text(body.text_name, 'text_name');
  const textDescription = text(body.text_description, 'text_description');
  return { ...(rules && { rules }), ...(textName !== undefined && { textName }), ...(textDescription !== undefined && { textDescription }) };
}

export const roleRoutes: ApiRoutes = (context) => namedItemRoutes(context, { kind: 'role', plural: 'roles', fields: FIELDS, change });
