import type { QoS } from '../protocol/index.js';
import { covers, matchesTopic } from './filters.js';
import { mostGenerous, type RateLimit } from './guard/publish-rate.js';

/**
 * Topic permissions: ordered rules {filter, actions, allow/deny, max QoS,
 * retain} grouped in roles; users and groups bound to roles. The first rule
 * that applies decides; what no rule allows is denied. `%c` and `%u` in a
 * filter stand for the client's id and user name, and a value that could
 * widen the rule (containing `+`, `#` or `/`, starting with `$`, or absent)
 * makes the rule not apply at all.
 */

/** `receive`: deliveries only (Mosquitto's publishClientReceive): it decides no subscription, only which messages reach one. */
export type AclAction = 'publish' | 'subscribe' | 'receive';

export interface AclRule {
  filter: string;
  actions: readonly AclAction[];
  effect: 'allow' | 'deny';
  /** Highest QoS allowed (publish: refused above; subscribe: granted at most). Default 2. */
  maxQos?: QoS;
  /** Publish: may the message be retained? Default true. */
  retain?: boolean;
}

/** Who is asking: the connected client, with what authentication said about it. */
export interface Principal {
  clientId: string;
  username: string | undefined;
  /** Groups the authentication provider reported (e.g. from a token), added to the configured ones. */
  groups?: readonly string[];
  /** Rules that came with the credentials (e.g. a JWT permissions claim), checked before the configured ones. */
  rules?: readonly AclRule[];
}

export interface AclUser {
  roles?: readonly string[];
  groups?: readonly string[];
}

export interface AclGroup {
  roles?: readonly string[];
}

/** The whole configuration, as YAML or the library gives it. */
export interface AclConfig {
  roles?: Record<string, readonly AclRule[]>;
  users?: Record<string, AclUser>;
  groups?: Record<string, AclGroup>;
  /** Roles for clients without a user name. */
  anonymous?: AclUser;
  /** Roles every client gets after its own (Mosquitto's `pattern` lines). */
  everyone?: AclUser;
  /** Publishing rate limits a role carries, by role name: a client gets the most generous of its roles'. */
  roleLimits?: Record<string, RateLimit>;
}

export type Decision = { allowed: true; qos: QoS } | { allowed: false; reason: string };

const UNSAFE_VALUE = /[+#/\u0000]/;

function substitute(filter: string, p: Principal): string | undefined {
  if (!filter.includes('%')) return filter;
  let unsafe = false;
  const out = filter.replace(/%[cu]/g, (token) => {
    const value = token === '%c' ? p.clientId : p.username;
    if (value === undefined || value.length === 0 || UNSAFE_VALUE.test(value) || value.startsWith('$')) unsafe = true;
    return value ?? '';
  });
  return unsafe ? undefined : out;
}

export class AccessControl {
  private roles = new Map<string, readonly AclRule[]>();
  private users = new Map<string, AclUser>();
  private groups = new Map<string, AclGroup>();
  private anonymous: AclUser = {};
  private everyone: AclUser = {};
  private roleLimits = new Map<string, RateLimit>();
  /** Bumped on every change, so callers can drop what they cached. */
  generation = 0;

  constructor(config: AclConfig = {}) {
    this.load(config);
  }

  /** Replaces everything (a reloaded file). */
  load(config: AclConfig): void {
    this.roles = new Map(Object.entries(config.roles ?? {}));
    this.users = new Map(Object.entries(config.users ?? {}));
    this.groups = new Map(Object.entries(config.groups ?? {}));
    this.anonymous = config.anonymous ?? {};
    this.everyone = config.everyone ?? {};
    this.roleLimits = new Map(Object.entries(config.roleLimits ?? {}));
    this.generation++;
  }

  /** `limit`: the publishing rate limit the role carries (left out: none); connections made from now on get it. */
  setRole(name: string, rules: readonly AclRule[], limit?: RateLimit): void {
    this.roles.set(name, rules);
    if (limit) this.roleLimits.set(name, limit);
    else this.roleLimits.delete(name);
    this.generation++;
  }

  deleteRole(name: string): void {
    this.roles.delete(name);
    this.roleLimits.delete(name);
    this.generation++;
  }

  setUser(name: string, user: AclUser): void {
    this.users.set(name, user);
    this.generation++;
  }

  deleteUser(name: string): void {
    this.users.delete(name);
    this.generation++;
  }

  setGroup(name: string, group: AclGroup): void {
    this.groups.set(name, group);
    this.generation++;
  }

  deleteGroup(name: string): void {
    this.groups.delete(name);
    this.generation++;
  }

  /** The rules that apply to `p`, in the order they are tried. */
  rulesFor(p: Principal): AclRule[] {
    const rules: AclRule[] = [...(p.rules ?? [])];
    for (const name of this.roleNames(p)) rules.push(...(this.roles.get(name) ?? []));
    return rules;
  }

  /** The publishing rate limit of `p`: the most generous its roles carry; undefined if none carries one. */
  rateLimitFor(p: Principal): RateLimit | undefined {
    if (this.roleLimits.size === 0) return undefined;
    const limits = this.roleNames(p).flatMap((name) => this.roleLimits.get(name) ?? []);
    return mostGenerous(limits);
  }

  /** The roles of `p` in order: its user's (or the anonymous ones), its groups', then everyone's. */
  roleNames(p: Principal): string[] {
    const user = p.username === undefined ? this.anonymous : this.users.get(p.username);
    const names = [...(user?.roles ?? [])];
    for (const group of [...(user?.groups ?? []), ...(p.groups ?? [])]) names.push(...(this.groups.get(group)?.roles ?? []));
    names.push(...(this.everyone.roles ?? []));
    return names;
  }

  /** A PUBLISH to `topic` (a will is judged the same way). */
  publish(p: Principal, topic: string, qos: QoS, retain: boolean, rules = this.rulesFor(p)): Decision {
    for (const rule of rules) {
      if (!rule.actions.includes('publish')) continue;
      const filter = substitute(rule.filter, p);
      if (filter === undefined || !matchesTopic(filter, topic)) continue;
      if (rule.effect === 'deny') return { allowed: false, reason: `denied by rule ${rule.filter}` };
      if (qos > (rule.maxQos ?? 2)) return { allowed: false, reason: `QoS ${qos} above ${rule.maxQos} allowed by rule ${rule.filter}` };
      if (retain && rule.retain === false) return { allowed: false, reason: `retain not allowed by rule ${rule.filter}` };
      return { allowed: true, qos };
    }
    return { allowed: false, reason: 'no rule allows it' };
  }

  /**
   * A SUBSCRIBE to `filter`: granted by the first rule whose filter covers all
   * of it (at most its max QoS), refused by the first deny rule that covers it.
   * Rules that overlap only part of it decide nothing here; deliveries are checked one by one.
   */
  subscribe(p: Principal, filter: string, qos: QoS, rules = this.rulesFor(p)): Decision {
    for (const rule of rules) {
      if (!rule.actions.includes('subscribe')) continue;
      const granted = substitute(rule.filter, p);
      if (granted === undefined || !covers(granted, filter)) continue;
      if (rule.effect === 'deny') return { allowed: false, reason: `denied by rule ${rule.filter}` };
      return { allowed: true, qos: Math.min(qos, rule.maxQos ?? 2) as QoS };
    }
    return { allowed: false, reason: 'no rule allows it' };
  }

  /** May a message on `topic` reach this subscriber? (Live and retained messages alike.) */
  deliver(p: Principal, topic: string, rules = this.rulesFor(p)): boolean {
    for (const rule of rules) {
      if (!rule.actions.includes('subscribe') && !rule.actions.includes('receive')) continue;
      const filter = substitute(rule.filter, p);
      if (filter === undefined || !matchesTopic(filter, topic)) continue;
      return rule.effect === 'allow';
    }
    return false;
  }
}

/** Several configurations as one (e.g. a Mosquitto acl_file and YAML rules): roles by name, and each user's, group's and client class's roles in order. */
export function mergeAcl(...configs: AclConfig[]): AclConfig {
  const merged: Required<AclConfig> = { roles: {}, users: {}, groups: {}, anonymous: {}, everyone: {}, roleLimits: {} };
  const join = (a: AclUser | undefined, b: AclUser | undefined): AclUser => ({
    roles: [...(a?.roles ?? []), ...(b?.roles ?? [])],
    groups: [...(a?.groups ?? []), ...(b?.groups ?? [])],
  });
  for (const c of configs) {
    Object.assign(merged.roles, c.roles);
    Object.assign(merged.roleLimits, c.roleLimits);
    for (const [name, user] of Object.entries(c.users ?? {})) merged.users[name] = join(merged.users[name], user);
    for (const [name, group] of Object.entries(c.groups ?? {})) merged.groups[name] = { roles: [...(merged.groups[name]?.roles ?? []), ...(group.roles ?? [])] };
    merged.anonymous = join(merged.anonymous, c.anonymous);
    merged.everyone = join(merged.everyone, c.everyone);
  }
  return merged;
}

/**
 * `{ publish?: [filters], subscribe?: [filters] }` as carried by a token claim or
 * an HTTP answer, turned into allow rules; throws for anything else.
 */
export function rulesFromPermissions(permissions: unknown): AclRule[] {
  if (permissions === null || typeof permissions !== 'object' || Array.isArray(permissions)) throw new Error('permissions must be an object');
  const rules: AclRule[] = [];
  for (const action of ['publish', 'subscribe'] as const) {
    const filters = (permissions as Record<string, unknown>)[action];
    if (filters === undefined) continue;
    if (!Array.isArray(filters) || !filters.every((f) => typeof f === 'string' && f !== '')) throw new Error(`permissions.${action} must be a list of filters`);
    for (const filter of filters as string[]) rules.push({ filter, actions: [action], effect: 'allow' });
  }
  return rules;
}
