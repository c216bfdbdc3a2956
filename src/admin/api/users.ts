import type { RuntimeSecurity, UserChange } from '../../security/index.js';
import { HttpError, type Route } from '../server.js';
import { API, field, jsonBody, onlyFields, page, type ApiRoutes } from './common.js';
import { bindingsOf, runtimeCall, runtimeCallAsync, runtimeOf, text } from './runtime.js';

/**
 * Runtime users (security.runtime): create, read, change, delete; kept in the store, in force for connected clients at
 * once. Names the configuration defines are its own: refused with 409. The password is never shown, only whether one is set.
 */

const FIELDS = ['password', 'roles', 'groups', 'client_id', 'disabled', 'text_name', 'text_description'];

function userJson(runtime: RuntimeSecurity, name: string): Record<string, unknown> {
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

export const userRoutes: ApiRoutes = ({ security }) => {
  const runtime = (): RuntimeSecurity => runtimeOf(security.runtime);
  const routes: Route[] = [
    {
      method: 'GET', path: `${API}/users`, access: 'read',
      handle: ({ query }) => {
        const r = runtime();
        const listed = page(r.listUsers(), (n) => n, query);
        return { json: { ...listed, items: listed.items.map((n) => userJson(r, n)) } };
      },
    },
    {
      method: 'POST', path: `${API}/users`, access: 'write',
      handle: async ({ body }) => {
        const request = jsonBody(body);
        onlyFields(request, ['name', ...FIELDS]);
        const name = field(request, 'name', 'string');
        if (name === undefined) throw new HttpError(400, 'name: required');
        const r = runtime();
        await runtimeCallAsync(() => r.setUser(name, change(request), true));
        return { status: 201, json: userJson(r, name) };
      },
    },
    { method: 'GET', path: `${API}/users/{name}`, access: 'read', handle: ({ params }) => ({ json: userJson(runtime(), params.name!) }) },
    {
      method: 'PATCH', path: `${API}/users/{name}`, access: 'write',
      handle: async ({ params, body }) => {
        const request = jsonBody(body);
        onlyFields(request, FIELDS);
        const r = runtime();
        await runtimeCallAsync(() => r.setUser(params.name!, change(request), false));
        return { json: userJson(r, params.name!) };
      },
    },
    {
      method: 'DELETE', path: `${API}/users/{name}`, access: 'write',
      handle: ({ params }) => {
        runtimeCall(() => runtime().deleteUser(params.name!));
        return { json: { removed: params.name } };
      },
    },
  ];
  return routes;
};
