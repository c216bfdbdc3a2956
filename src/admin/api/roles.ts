import type { RuntimeSecurity } from '../../security/index.js';
import { HttpError, type Route } from '../server.js';
import { API, field, jsonBody, onlyFields, page, type ApiRoutes } from './common.js';
import { rulesOf, runtimeCall, runtimeOf, text } from './runtime.js';

/** Runtime roles (security.runtime): ordered rules; create, read, change, delete (users and groups lose a deleted role). */

const FIELDS = ['rules', 'text_name', 'text_description'];

function roleJson(runtime: RuntimeSecurity, name: string): Record<string, unknown> {
  const role = runtime.getRole(name);
  if (!role) throw new HttpError(404, `role "${name}" does not exist`);
  return {
    name, rules: role.rules, text_name: role.textName ?? null, text_description: role.textDescription ?? null,
    in_force: !runtime.isDeclared('role', name),
  };
}

function change(body: Record<string, unknown>): Parameters<RuntimeSecurity['setRole']>[1] {
  const rules = rulesOf(body.rules);
  const textName = text(body.text_name, 'text_name');
  const textDescription = text(body.text_description, 'text_description');
  return { ...(rules && { rules }), ...(textName !== undefined && { textName }), ...(textDescription !== undefined && { textDescription }) };
}

export const roleRoutes: ApiRoutes = ({ security }) => {
  const runtime = (): RuntimeSecurity => runtimeOf(security.runtime);
  const routes: Route[] = [
    {
      method: 'GET', path: `${API}/roles`, access: 'read',
      handle: ({ query }) => {
        const r = runtime();
        const listed = page(r.listRoles(), (n) => n, query);
        return { json: { ...listed, items: listed.items.map((n) => roleJson(r, n)) } };
      },
    },
    {
      method: 'POST', path: `${API}/roles`, access: 'write',
      handle: ({ body }) => {
        const request = jsonBody(body);
        onlyFields(request, ['name', ...FIELDS]);
        const name = field(request, 'name', 'string');
        if (name === undefined) throw new HttpError(400, 'name: required');
        const r = runtime();
        runtimeCall(() => r.setRole(name, change(request), true));
        return { status: 201, json: roleJson(r, name) };
      },
    },
    { method: 'GET', path: `${API}/roles/{name}`, access: 'read', handle: ({ params }) => ({ json: roleJson(runtime(), params.name!) }) },
    {
      method: 'PATCH', path: `${API}/roles/{name}`, access: 'write',
      handle: ({ params, body }) => {
        const request = jsonBody(body);
        onlyFields(request, FIELDS);
        const r = runtime();
        runtimeCall(() => r.setRole(params.name!, change(request), false));
        return { json: roleJson(r, params.name!) };
      },
    },
    {
      method: 'DELETE', path: `${API}/roles/{name}`, access: 'write',
      handle: ({ params }) => {
        runtimeCall(() => runtime().deleteRole(params.name!));
        return { json: { removed: params.name } };
      },
    },
  ];
  return routes;
};
