import type { RuntimeSecurity } from '../../security/index.js';
import type { GroupChange } from '../../security/runtime-store.js';
import { HttpError } from '../server.js';
import type { ApiRoutes } from './common.js';
import { bindingsOf, namedItemRoutes, text } from './runtime.js';

/** Runtime groups (security.runtime): their roles; create, read, change, delete (members lose a deleted group). */

const FIELDS = ['roles', 'text_name', 'text_description'];

export function groupJson(runtime: RuntimeSecurity, name: string): Record<string, unknown> {
  const group = runtime.getGroup(name);
  if (!group) throw new HttpError(404, `group "${name}" does not exist`);
  return {
    name, roles: group.roles, members: runtime.membersOf(name), text_name: group.textName ?? null, text_description: group.textDescription ?? null,
    in_force: !runtime.isDeclared('group', name),
  };
}

function change(body: Record<string, unknown>): GroupChange {
  const roles = bindingsOf(body.roles, 'roles');
  const textName = text(body.text_name, 'text_name');
  const textDescription = text(body.text_description, 'text_description');
  return { ...(roles && { roles }), ...(textName !== undefined && { textName }), ...(textDescription !== undefined && { textDescription }) };
}

export const groupRoutes: ApiRoutes = (context) => namedItemRoutes(context, { kind: 'group', plural: 'groups', fields: FIELDS, change });
