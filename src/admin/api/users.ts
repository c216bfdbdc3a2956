import type { RuntimeSecurity, UserChange } from '../../security/index.js';
import { HttpError } from '../server.js';
import { field, type ApiRoutes } from './common.js';
import { bindingsOf, namedItemRoutes, text } from './runtime.js';

/**
 * Runtime users (security.runtime): create, read, change, delete (routes in runtime.ts); kept in the store, in force for connected clients at
 * once. Names the configuration defines are its own: refused with 409. The password is never shown, only whether one is set.
 */

const FIELDS = ['password', 'roles', 'groups', 'client_id', 'disabled', 'text_name', 'text_description'];

export function userJson(runtime: RuntimeSecurity, name: string): Record<string, unknown> {
  const user = runtime.getUser(name);
  if (!user) throw new HttpError(404, `user "${name}" does not exist`);
  return {
    name, has_password: user.credential !== undefined, roles: user.roles, groups: user.groups, client_id: user.clientId ?? null,
    disabled: user.disabled === true, text_name: user.textName ?? null, text_description: user.textDescription ?? null,
    // A name the configuration came to define (after a reload) is kept here but not in force.
    in_force: !runtime.isDeclared('user', name),
  };
}

function change(body: Record<string, unknown>): UserChange {
  const c: UserChange = {};
  const password = text(body.password, 'password');
  if (password !== undefined) c.password = password;
  const roles = bindingsOf(body.roles, 'roles');
  if (roles) c.roles = roles;
  const groups = bindingsOf(body.groups, 'groups');
  if (groups) c.groups = groups;
  if (body.client_id === null) c.clientId = null;
  else {
    const clientId = text(body.client_id, 'client_id');
    if (clientId !== undefined) c.clientId = clientId;
  }
  const disabled = field(body, 'disabled', 'boolean');
  if (disabled !== undefined) c.disabled = disabled;
  const textName = text(body.text_name, 'text_name');
  if (textName !== undefined) c.textName = textName;
  const textDescription = text(body.text_description, 'text_description');
  if (textDescription !== undefined) c.textDescription = textDescription;
  return c;
}

export const userRoutes: ApiRoutes = (context) => namedItemRoutes(context, { kind: 'user', plural: 'users', fields: FIELDS, change });
