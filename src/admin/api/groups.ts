import type { RuntimeSecurity } from '../../security/index.js';
import { HttpError, type Route } from '../server.js';
import { API, field, jsonBody, onlyFields, page, type ApiRoutes } from './common.js';
import { bindingsOf, runtimeCall, runtimeOf, text } from './runtime.js';

/** Runtime groups (security.runtime): their roles; create, read, change, delete (members lose a deleted group). */

const FIELDS = ['roles', 'text_name', 'text_description'];

function groupJson(runtime: RuntimeSecurity, name: string): Record<string, unknown> {
  const group = runtime.getGroup(name);
  if (!group) throw new HttpError(404, `group "${name}" does not exist`);
  return {
    name, roles: group.roles, members: runtime.membersOf(name), text_name: group.textName ?? null, text_description: group.textDescription ?? null,
    in_force: !runtime.isDeclared('group', name),
  };
}

function change(body: Record<string, unknown>): Parameters<RuntimeSecurity['setGroup']>[1] {
  const roles = bindingsOf(body.roles, 'roles');
  const textName = text(body.text_name, 'text_name');
  const textDescription = text(body.text_description, 'text_description');
  return { ...(roles && { roles }), ...(textName !== undefined && { textName }), ...(textDescription !== undefined && { textDescription }) };
}

export const groupRoutes: ApiRoutes = ({ security }) => {
  const runtime = (): RuntimeSecurity => runtimeOf(security.runtime);
  const routes: Route[] = [
    {
      method: 'GET', path: `${API}/groups`, access: 'read',
      handle: ({ query }) => {
        const r = runtime();
        const listed = page(r.listGroups(), (n) => n, query);
        return { json: { ...listed, items: listed.items.map((n) => groupJson(r, n)) } };
      },
    },
    {
      method: 'POST', path: `${API}/groups`, access: 'write',
      handle: ({ body }) => {
        const request = jsonBody(body);
        onlyFields(request, ['name', ...FIELDS]);
        const name = field(request, 'name', 'string');
        if (name === undefined) throw new HttpError(400, 'name: required');
        const r = runtime();
        runtimeCall(() => r.setGroup(name, change(request), true));
        return { status: 201, json: groupJson(r, name) };
      },
    },
    { method: 'GET', path: `${API}/groups/{name}`, access: 'read', handle: ({ params }) => ({ json: groupJson(runtime(), params.name!) }) },
    {
      method: 'PATCH', path: `${API}/groups/{name}`, access: 'write',
      handle: ({ params, body }) => {
        const request = jsonBody(body);
        onlyFields(request, FIELDS);
        const r = runtime();
        runtimeCall(() => r.setGroup(params.name!, change(request), false));
        return { json: groupJson(r, params.name!) };
      },
    },
    {
      method: 'DELETE', path: `${API}/groups/{name}`, access: 'write',
      handle: ({ params }) => {
        runtimeCall(() => runtime().deleteGroup(params.name!));
        return { json: { removed: params.name } };
      },
    },
  ];
  return routes;
};
