import type { BrokerHooks, ClientInfo, PublishRequest } from '../broker/hooks.js';
import { parseSharedFilter } from '../protocol/index.js';
import type { AccessControl, AclAction, AclRule } from './acl.js';
import type { AuditLog } from './audit.js';
import { principalOf } from './authorizer.js';
import { RuntimeSecurityError, byPriority, type Binding, type RuntimeRule, type RuntimeSecurity } from './runtime-store.js';

/**
 * Mosquitto's dynamic-security control API (`mosquitto_ctrl dynsec …`) on Moat's runtime users, groups and roles:
 * a JSON `{"commands":[…]}` published to `$CONTROL/dynamic-security/v1` by a client holding the admin role is
 * carried out in order and answered with `{"responses":[…]}` on `$CONTROL/dynamic-security/v1/response`. Anyone
 * else's publish there is refused and goes nowhere. What Moat cannot express is refused with an error naming why.
 */

export const DYNSEC_TOPIC = '$CONTROL/dynamic-security/v1';
export const DYNSEC_RESPONSE_TOPIC = `${DYNSEC_TOPIC}/response`;

/** The rule that lets an admin hear the answers (given to the admin role). */
export const RESPONSE_RULE: AclRule = { filter: DYNSEC_RESPONSE_TOPIC, actions: ['subscribe'], effect: 'allow' };

type Json = Record<string, unknown>;

export interface DynsecResponse {
  command: string;
  error?: string;
  data?: unknown;
  correlationData?: unknown;
}

/** Mosquitto's ACL types, and the Moat action each becomes. */
const ACTION_OF: Record<string, AclAction> = {
  publishClientSend: 'publish',
  publishClientReceive: 'receive',
  subscribePattern: 'subscribe',
  subscribeLiteral: 'subscribe',
};
const ACLTYPE_OF: Record<AclAction, string> = { publish: 'publishClientSend', receive: 'publishClientReceive', subscribe: 'subscribePattern' };

/** Moat's defaults, which do not change: what no rule allows is refused, and only a granted subscription delivers. */
const DEFAULT_ACCESS: Record<string, boolean> = { publishClientSend: false, publishClientReceive: true, subscribe: false, unsubscribe: true };

class CommandError extends Error {}

/** A Mosquitto ACL as a Moat rule; throws (with Mosquitto-like words) what cannot be expressed. */
export function ruleFromAcl(acl: { acltype?: unknown; topic?: unknown; allow?: unknown; priority?: unknown }): RuntimeRule {
  const type = acl.acltype;
  if (typeof type !== 'string') throw new CommandError('Invalid/missing acltype');
  if (/^unsubscribe/.test(type)) throw new CommandError(`Unsupported acltype ${type}: Moat does not authorize UNSUBSCRIBE (a client may always unsubscribe)`);
  const action = ACTION_OF[type];
  if (!action) throw new CommandError('Invalid acltype');
  if (typeof acl.topic !== 'string' || acl.topic.length === 0) throw new CommandError('Invalid/missing topic');
  if (type === 'subscribeLiteral' && /[+#]/.test(acl.topic)) {
    throw new CommandError('Unsupported subscribeLiteral with wildcards: Moat matches subscriptions as patterns; use subscribePattern');
  }
  if (acl.priority !== undefined && !Number.isInteger(acl.priority)) throw new CommandError('Invalid priority');
  const rule: RuntimeRule = { filter: acl.topic, actions: [action], effect: acl.allow === true ? 'allow' : 'deny' };
  if (acl.priority !== undefined) rule.priority = acl.priority as number;
  return rule;
}

/** A Moat rule as Mosquitto ACLs (one per action). */
export function aclsFromRule(rule: RuntimeRule): Json[] {
  return rule.actions.map((action) => ({ acltype: ACLTYPE_OF[action], topic: rule.filter, priority: rule.priority ?? 0, allow: rule.effect === 'allow' }));
}

const str = (c: Json, key: string, what = key): string => {
  const value = c[key];
  if (typeof value !== 'string' || value.length === 0) throw new CommandError(`Invalid/missing ${what}`);
  return value;
};
const optStr = (c: Json, key: string): string | undefined => (typeof c[key] === 'string' ? (c[key] as string) : undefined);
const priority = (c: Json): number | undefined => (Number.isInteger(c.priority) ? (c.priority as number) : undefined);
const refs = (list: unknown, key: 'rolename' | 'groupname'): Binding[] | undefined => {
  if (list === undefined) return undefined;
  if (!Array.isArray(list)) throw new CommandError(`Invalid ${key === 'rolename' ? 'roles' : 'groups'}`);
  return (list as Json[]).map((item) => {
    if (typeof item?.[key] !== 'string') throw new CommandError(`Invalid/missing ${key}`);
    const p = priority(item);
    return { name: item[key] as string, ...(p !== undefined && { priority: p }) };
  });
};
const page = <T>(all: T[], c: Json): { totalCount: number; items: T[] } => {
  const offset = Number.isInteger(c.offset) && (c.offset as number) > 0 ? (c.offset as number) : 0;
  const count = Number.isInteger(c.count) && (c.count as number) >= 0 ? (c.count as number) : all.length;
  return { totalCount: all.length, items: all.slice(offset, offset + count) };
};

function describeUser(runtime: RuntimeSecurity, name: string): Json {
  const user = runtime.getUser(name);
  if (!user) throw new CommandError('Client not found');
  return {
    username: name,
    ...(user.clientId !== undefined && { clientid: user.clientId }),
    ...(user.textName !== undefined && { textname: user.textName }),
    ...(user.textDescription !== undefined && { textdescription: user.textDescription }),
    ...(user.disabled && { disabled: true }),
    roles: byPriority(user.roles).map((r) => ({ rolename: r.name, ...(r.priority !== undefined && { priority: r.priority }) })),
    groups: byPriority(user.groups).map((g) => ({ groupname: g.name, ...(g.priority !== undefined && { priority: g.priority }) })),
  };
}

function describeGroup(runtime: RuntimeSecurity, name: string): Json {
  const group = runtime.getGroup(name);
  if (!group) throw new CommandError('Group not found');
  return {
    groupname: name,
    ...(group.textName !== undefined && { textname: group.textName }),
    ...(group.textDescription !== undefined && { textdescription: group.textDescription }),
    roles: byPriority(group.roles).map((r) => ({ rolename: r.name, ...(r.priority !== undefined && { priority: r.priority }) })),
    clients: runtime.membersOf(name).map((username) => ({ username })),
  };
}

function describeRole(runtime: RuntimeSecurity, name: string): Json {
  const role = runtime.getRole(name);
  if (!role) throw new CommandError('Role not found');
  return {
    rolename: name,
    ...(role.textName !== undefined && { textname: role.textName }),
    ...(role.textDescription !== undefined && { textdescription: role.textDescription }),
    acls: byPriority(role.rules).flatMap(aclsFromRule),
  };
}

const SUBJECT: Record<string, string> = { user: 'Client', group: 'Group', role: 'Role' };

/** Mosquitto's words for the runtime store's refusals ("Client not found", "Role already exists"). */
function wordsFor(err: RuntimeSecurityError): string {
  const subject = SUBJECT[err.message.split(' ')[0]!];
  if (subject && err.code === 'exists') return `${subject} already exists`;
  if (subject && err.code === 'notFound') return `${subject} not found`;
  return err.message;
}

/** Carries out one command; returns its data (if any) or throws a CommandError / RuntimeSecurityError. */
async function run(runtime: RuntimeSecurity, c: Json): Promise<unknown> {
  switch (c.command) {
    case 'createClient': {
      const username = str(c, 'username');
      const roles = refs(c.roles, 'rolename');
      const groups = refs(c.groups, 'groupname');
      if (runtime.getUser(username) || runtime.isDeclared('user', username)) throw new CommandError('Client already exists');
      await runtime.setUser(username, {
        ...(typeof c.password === 'string' && c.password.length > 0 && { password: c.password }),
        ...(roles && { roles }), ...(groups && { groups }),
        ...(optStr(c, 'clientid') && { clientId: optStr(c, 'clientid')! }),
        ...(optStr(c, 'textname') !== undefined && { textName: optStr(c, 'textname')! }),
        ...(optStr(c, 'textdescription') !== undefined && { textDescription: optStr(c, 'textdescription')! }),
      }, true);
      return undefined;
    }
    case 'deleteClient': runtime.deleteUser(str(c, 'username')); return undefined;
    case 'setClientPassword': await runtime.setUser(str(c, 'username'), { password: str(c, 'password') }, false); return undefined;
    case 'setClientId': await runtime.setUser(str(c, 'username'), { clientId: optStr(c, 'clientid') ?? null }, false); return undefined;
    case 'enableClient': await runtime.setUser(str(c, 'username'), { disabled: false }, false); return undefined;
    case 'disableClient': await runtime.setUser(str(c, 'username'), { disabled: true }, false); return undefined;
    case 'modifyClient': {
      const roles = refs(c.roles, 'rolename');
      const groups = refs(c.groups, 'groupname');
      await runtime.setUser(str(c, 'username'), {
        ...(typeof c.password === 'string' && c.password.length > 0 && { password: c.password }),
        ...(roles && { roles }), ...(groups && { groups }),
        ...(typeof c.clientid === 'string' && { clientId: c.clientid || null }),
        ...(optStr(c, 'textname') !== undefined && { textName: optStr(c, 'textname')! }),
        ...(optStr(c, 'textdescription') !== undefined && { textDescription: optStr(c, 'textdescription')! }),
      }, false);
      return undefined;
    }
    case 'getClient': return { client: describeUser(runtime, str(c, 'username')) };
    case 'listClients': {
      const { totalCount, items } = page(runtime.listUsers(), c);
      return { totalCount, clients: c.verbose === true ? items.map((name) => describeUser(runtime, name)) : items };
    }
    case 'addClientRole': runtime.addUserRole(str(c, 'username'), str(c, 'rolename'), priority(c)); return undefined;
    case 'removeClientRole': runtime.removeUserRole(str(c, 'username'), str(c, 'rolename')); return undefined;
    case 'createGroup': {
      const groupname = str(c, 'groupname');
      const roles = refs(c.roles, 'rolename');
      if (runtime.getGroup(groupname) || runtime.isDeclared('group', groupname)) throw new CommandError('Group already exists');
      runtime.setGroup(groupname, {
        ...(roles && { roles }),
        ...(optStr(c, 'textname') !== undefined && { textName: optStr(c, 'textname')! }),
        ...(optStr(c, 'textdescription') !== undefined && { textDescription: optStr(c, 'textdescription')! }),
      }, true);
      return undefined;
    }
    case 'deleteGroup': runtime.deleteGroup(str(c, 'groupname')); return undefined;
    case 'getGroup': return { group: describeGroup(runtime, str(c, 'groupname')) };
    case 'listGroups': {
      const { totalCount, items } = page(runtime.listGroups(), c);
      return { totalCount, groups: c.verbose === true ? items.map((name) => describeGroup(runtime, name)) : items };
    }
    case 'addGroupClient': {
      const groupname = str(c, 'groupname');
      if (!runtime.getGroup(groupname) && !runtime.isDeclared('group', groupname)) throw new CommandError('Group not found');
      runtime.addUserGroup(str(c, 'username'), groupname, priority(c));
      return undefined;
    }
    case 'removeGroupClient': runtime.removeUserGroup(str(c, 'username'), str(c, 'groupname')); return undefined;
    case 'addGroupRole': runtime.addGroupRole(str(c, 'groupname'), str(c, 'rolename'), priority(c)); return undefined;
    case 'removeGroupRole': runtime.removeGroupRole(str(c, 'groupname'), str(c, 'rolename')); return undefined;
    case 'createRole': {
      const rolename = str(c, 'rolename');
      if (runtime.getRole(rolename) || runtime.isDeclared('role', rolename)) throw new CommandError('Role already exists');
      if (c.acls !== undefined && !Array.isArray(c.acls)) throw new CommandError('Invalid acls');
      const rules = ((c.acls ?? []) as Json[]).map(ruleFromAcl);
      runtime.setRole(rolename, {
        rules,
        ...(optStr(c, 'textname') !== undefined && { textName: optStr(c, 'textname')! }),
        ...(optStr(c, 'textdescription') !== undefined && { textDescription: optStr(c, 'textdescription')! }),
      }, true);
      return undefined;
    }
    case 'modifyRole': {
      if (c.acls !== undefined && !Array.isArray(c.acls)) throw new CommandError('Invalid acls');
      runtime.setRole(str(c, 'rolename'), {
        ...(c.acls !== undefined && { rules: (c.acls as Json[]).map(ruleFromAcl) }),
        ...(optStr(c, 'textname') !== undefined && { textName: optStr(c, 'textname')! }),
        ...(optStr(c, 'textdescription') !== undefined && { textDescription: optStr(c, 'textdescription')! }),
      }, false);
      return undefined;
    }
    case 'deleteRole': runtime.deleteRole(str(c, 'rolename')); return undefined;
    case 'getRole': return { role: describeRole(runtime, str(c, 'rolename')) };
    case 'listRoles': {
      const { totalCount, items } = page(runtime.listRoles(), c);
      return { totalCount, roles: c.verbose === true ? items.map((name) => describeRole(runtime, name)) : items };
    }
    case 'addRoleACL': {
      const rolename = str(c, 'rolename');
      const rule = ruleFromAcl(c);
      const role = runtime.getRole(rolename);
      if (!role) throw new CommandError(runtime.isDeclared('role', rolename) ? `role "${rolename}" is defined by the configuration; change it there` : 'Role not found');
      if (role.rules.some((r) => r.filter === rule.filter && r.actions.join() === rule.actions.join())) throw new CommandError('ACL with this topic already exists');
      runtime.setRole(rolename, { rules: [...role.rules, rule] }, false);
      return undefined;
    }
    case 'removeRoleACL': {
      const rolename = str(c, 'rolename');
      const rule = ruleFromAcl({ ...c, allow: true });
      const role = runtime.getRole(rolename);
      if (!role) throw new CommandError(runtime.isDeclared('role', rolename) ? `role "${rolename}" is defined by the configuration; change it there` : 'Role not found');
      const rules = role.rules.filter((r) => !(r.filter === rule.filter && r.actions.join() === rule.actions.join()));
      if (rules.length === role.rules.length) throw new CommandError('ACL not found');
      runtime.setRole(rolename, { rules }, false);
      return undefined;
    }
    case 'setDefaultACLAccess': {
      if (!Array.isArray(c.acls)) throw new CommandError('Missing/invalid acls array');
      for (const acl of c.acls as Json[]) {
        const type = acl?.acltype;
        if (typeof type !== 'string' || !(type in DEFAULT_ACCESS)) throw new CommandError('Invalid acltype');
        if (acl.allow !== DEFAULT_ACCESS[type]) {
          throw new CommandError(`Unsupported: Moat's default access is fixed (${type} ${DEFAULT_ACCESS[type] ? 'allow' : 'deny'}); grant access with roles`);
        }
      }
      return undefined;
    }
    case 'getDefaultACLAccess': return { acls: Object.entries(DEFAULT_ACCESS).map(([acltype, allow]) => ({ acltype, allow })) };
    default: throw new CommandError('Unknown command');
  }
}

/** What each command that changes something changes: the kind of item, and the field of the command naming it. */
const CHANGES: Readonly<Record<string, readonly [target: 'user' | 'group' | 'role' | 'default_acl', nameField: string]>> = {
  createClient: ['user', 'username'], deleteClient: ['user', 'username'], setClientPassword: ['user', 'username'],
  setClientId: ['user', 'username'], enableClient: ['user', 'username'], disableClient: ['user', 'username'],
  modifyClient: ['user', 'username'], addClientRole: ['user', 'username'], removeClientRole: ['user', 'username'],
  createGroup: ['group', 'groupname'], deleteGroup: ['group', 'groupname'], modifyGroup: ['group', 'groupname'],
  addGroupClient: ['group', 'groupname'], removeGroupClient: ['group', 'groupname'], addGroupRole: ['group', 'groupname'],
  removeGroupRole: ['group', 'groupname'],
  createRole: ['role', 'rolename'], modifyRole: ['role', 'rolename'], deleteRole: ['role', 'rolename'],
  addRoleACL: ['role', 'rolename'], removeRoleACL: ['role', 'rolename'],
  setDefaultACLAccess: ['default_acl', ''],
};

/** A change carried out, for the audit trail: `change` is the command (createClient, addRoleACL, ...). */
export interface DynsecChange {
  target: 'user' | 'group' | 'role' | 'default_acl';
  name: string;
  change: string;
}

/**
 * Carries out a request's commands in order, each answered (an error stops only its own command); `changed` hears
 * of each command that changed something, once it has.
 */
export async function handleRequest(
  runtime: RuntimeSecurity, payload: Buffer | string, changed?: (change: DynsecChange) => void,
): Promise<{ responses: DynsecResponse[] }> {
  let request: unknown;
  try {
    request = JSON.parse(payload.toString());
  } catch {
    return { responses: [{ command: 'Unknown command', error: 'Payload not valid JSON' }] };
  }
  const commands = (request as Json | null)?.commands;
  if (!Array.isArray(commands)) return { responses: [{ command: 'Unknown command', error: 'Invalid/missing commands' }] };
  const responses: DynsecResponse[] = [];
  for (const c of commands as Json[]) {
    const command = typeof c?.command === 'string' ? c.command : 'Unknown command';
    const response: DynsecResponse = { command };
    if (c?.correlationData !== undefined) response.correlationData = c.correlationData;
    try {
      if (c === null || typeof c !== 'object') throw new CommandError('Invalid command');
      const data = await run(runtime, c);
      if (data !== undefined) response.data = data;
      const kind = CHANGES[command];
      if (kind && changed) changed({ target: kind[0], name: kind[1] === '' ? '' : String(c[kind[1]] ?? ''), change: command });
    } catch (err) {
      if (err instanceof CommandError) response.error = err.message;
      else if (err instanceof RuntimeSecurityError) response.error = wordsFor(err);
      else response.error = 'Internal error';
    }
    responses.push(response);
  }
  return { responses };
}

/** Who sent a request, for the audit trail. */
export interface DynsecCaller {
  clientId: string;
  username: string | undefined;
  remoteAddress: string;
  listener: string;
}

/** Carries out a request and answers it: here (`DynamicSecurity.execute`), or elsewhere (multi-core: in worker 0). */
export type DynsecExecutor = (payload: Buffer, caller: DynsecCaller) => Promise<{ responses: DynsecResponse[] }>;

export interface DynsecOptions {
  /** The role whose holders may use the API (default "admin"). */
  adminRole?: string;
  /**
   * Where requests are carried out, once the sender is known to be an admin. Default: this process's runtime store.
   * Multi-core mode: worker 0's, the one writer of runtime users (src/multicore/shared-runtime.ts).
   */
  execute?: DynsecExecutor;
}

/**
 * The control API as a broker hook: it takes publishes to DYNSEC_TOPIC from authenticated clients holding the admin
 * role, carries them out one request at a time, and publishes the answers through `attach`'s publisher.
 */
export class DynamicSecurity {
  readonly adminRole: string;
  private publish: ((topic: string, payload: Buffer) => void) | undefined;
  private queue: Promise<void> = Promise.resolve();

  private readonly executor: DynsecExecutor;

  constructor(private readonly runtime: RuntimeSecurity, private readonly acl: AccessControl, private readonly audit: AuditLog, options: DynsecOptions = {}) {
    this.adminRole = options.adminRole ?? 'admin';
    this.executor = options.execute ?? ((payload, caller) => this.execute(payload, caller));
  }

  /** Carries out a request on this process's runtime store; each change is audited as `security.change`. */
  execute(payload: Buffer, caller: DynsecCaller): Promise<{ responses: DynsecResponse[] }> {
    const principal = `mqtt:${caller.username ?? caller.clientId}`;
    return handleRequest(this.runtime, payload, (change) => this.audit.record({ event: 'security.change', ...caller, principal, ...change }));
  }

  /** Where the answers go (the broker's publish). */
  attach(publish: (topic: string, payload: Buffer) => void): void {
    this.publish = publish;
  }

  /** Does this client hold the admin role? Only an authenticated one can. */
  isAdmin(client: ClientInfo): boolean {
    return client.identity !== undefined && this.acl.roleNames(principalOf(client)).includes(this.adminRole);
  }

  hooks(): BrokerHooks {
    return {
      // The answers are for admins only: a `$CONTROL` subscription is refused to anyone else, whatever the rules say.
      authorizeSubscribe: (client, subscription) => {
        const filter = parseSharedFilter(subscription.filter)?.filter ?? subscription.filter;
        return !filter.startsWith('$CONTROL') || this.isAdmin(client);
      },
      receiveControl: (client: ClientInfo, message: PublishRequest) => {
        if (message.topic !== DYNSEC_TOPIC) return undefined;
        const who: DynsecCaller = { clientId: client.id, username: client.identity?.username ?? client.username, remoteAddress: client.remoteAddress, listener: client.listener };
        if (!this.isAdmin(client)) {
          this.audit.record({ event: 'publish.refused', ...who, topic: message.topic, reason: `not holding the ${this.adminRole} role` });
          return false;
        }
        const payload = Buffer.from(message.payload);
        this.queue = this.queue.then(async () => {
          let answer: { responses: DynsecResponse[] };
          try {
            answer = await this.executor(payload, who);
          } catch {
            answer = { responses: [{ command: 'Unknown command', error: 'Internal error' }] };
          }
          for (const r of answer.responses) {
            this.audit.record({ event: 'dynsec.command', ...who, action: r.command, ...(r.error !== undefined && { reason: r.error }) });
          }
          this.publish?.(DYNSEC_RESPONSE_TOPIC, Buffer.from(JSON.stringify(answer)));
        }).catch(() => {});
        return true;
      },
    };
  }
}
