import { randomBytes } from 'node:crypto';
import { topicFilterError } from '../protocol/index.js';
import type { AclConfig, AclRule, AclUser } from './acl.js';
import { DEFAULT_SCRYPT, createEntry, formatEntry, parsePasswordFile, type PasswordEntry, type PasswordHash } from './password-file.js';
import type { PasswordSource } from './password-provider.js';

/**
 * Users, groups and roles created and changed while the broker runs (the library's `security.runtime`, Mosquitto's
 * dynamic-security API), kept in the broker's store as records of kind `user`, `group` and `role`, so they last
 * across restarts and reloads. The configuration (password files, YAML, the ACL file) is the operator's declared
 * state: a name it defines is its own, runtime changes to that name are refused, and a runtime item whose name the
 * configuration comes to define (after a reload) is kept in the store but not in force while the configuration
 * defines it.
 */

/** A role or group a user (or group) is bound to; higher priorities are tried first, equal ones in the order added. */
export interface Binding {
  name: string;
  priority?: number;
}

/** A rule of a runtime role: an AclRule with the priority it is tried in (higher first). */
export type RuntimeRule = AclRule & { priority?: number };

export interface RuntimeUser {
  /** The password hash in Moat's format (`scrypt$…[:scram-sha-256$…]`), never the password; none: the user cannot log in. */
  credential?: string;
  roles: Binding[];
  groups: Binding[];
  /** Only a client with this Client Identifier may log in as the user. */
  clientId?: string;
  disabled?: boolean;
  textName?: string;
  textDescription?: string;
}

export interface RuntimeGroup {
  roles: Binding[];
  textName?: string;
  textDescription?: string;
}

export interface RuntimeRole {
  rules: RuntimeRule[];
  textName?: string;
  textDescription?: string;
}

/** What `setUser` is given: the password in clear (hashed here) and the rest of a RuntimeUser. */
export interface UserChange {
  password?: string | Buffer;
  roles?: ReadonlyArray<string | Binding>;
  groups?: ReadonlyArray<string | Binding>;
  clientId?: string | null;
  disabled?: boolean;
  textName?: string;
  textDescription?: string;
}

export type RecordKind = 'user' | 'group' | 'role';

/** What `setGroup` is given. */
export interface GroupChange {
  roles?: ReadonlyArray<string | Binding>;
  textName?: string;
  textDescription?: string;
}

/** What `setRole` is given. */
export interface RoleChange {
  rules?: readonly RuntimeRule[];
  textName?: string;
  textDescription?: string;
}

/** One stored item as written: a user, group or role by name; `value` absent: deleted. Plain data (it crosses IPC). */
export interface RuntimeRecord {
  kind: RecordKind;
  key: string;
  value?: RuntimeUser | RuntimeGroup | RuntimeRole;
}

/** Where runtime items are kept (the broker's store records). */
export interface RuntimePersistence {
  load(kind: RecordKind): Iterable<[key: string, value: unknown]>;
  save(kind: RecordKind, key: string, value: unknown): void;
  delete(kind: RecordKind, key: string): void;
}

/** Which names the configuration defines: those are its own. */
export interface DeclaredNames {
  /** A user with a password in a password file, or role bindings in the YAML or ACL file. */
  user(name: string): boolean;
  group(name: string): boolean;
  role(name: string): boolean;
}

/** Why a runtime change was refused; `code` says what kind of refusal it is. */
export class RuntimeSecurityError extends Error {
  override readonly name = 'RuntimeSecurityError';
  constructor(readonly code: 'notFound' | 'exists' | 'declared' | 'invalid', message: string) {
    super(message);
  }
}

const NO_NAMES: DeclaredNames = { user: () => false, group: () => false, role: () => false };

/** Sorted by priority, highest first; equal priorities keep their order. */
export function byPriority<T extends { priority?: number }>(items: readonly T[]): T[] {
  return items.map((item, index) => ({ item, index }))
    .sort((a, b) => (b.item.priority ?? 0) - (a.item.priority ?? 0) || a.index - b.index)
    .map(({ item }) => item);
}

function bindings(list: ReadonlyArray<string | Binding> | undefined): Binding[] {
  return (list ?? []).map((b) => (typeof b === 'string' ? { name: b } : { name: b.name, ...(b.priority !== undefined && { priority: b.priority }) }));
}

function checkName(what: string, name: string): void {
  if (typeof name !== 'string' || name.length === 0 || /[\r\n:\u0000]/.test(name) || name.trim() !== name) {
    throw new RuntimeSecurityError('invalid', `a ${what} name must be non-empty, without ":", line breaks or surrounding spaces`);
  }
  // Names are keys of plain objects where the permissions are assembled: these would name the objects' own machinery.
  if (Object.hasOwn(Object.prototype, name) || name === '__proto__' || name === 'prototype') {
    throw new RuntimeSecurityError('invalid', `"${name}" cannot be a ${what} name (reserved)`);
  }
}

/** Throws for a rule Moat cannot enforce as given. */
export function checkRule(rule: RuntimeRule): void {
  const problem = typeof rule.filter === 'string' ? topicFilterError(rule.filter) : 'not a string';
  if (problem) throw new RuntimeSecurityError('invalid', `invalid topic filter "${String(rule.filter)}": ${problem}`);
  if (!Array.isArray(rule.actions) || rule.actions.length === 0 || !rule.actions.every((a) => a === 'publish' || a === 'subscribe' || a === 'receive')) {
    throw new RuntimeSecurityError('invalid', 'a rule needs actions among publish, subscribe and receive');
  }
  if (rule.effect !== 'allow' && rule.effect !== 'deny') throw new RuntimeSecurityError('invalid', 'a rule\'s effect is allow or deny');
  if (rule.priority !== undefined && !Number.isInteger(rule.priority)) throw new RuntimeSecurityError('invalid', 'a priority is an integer');
}

export class RuntimeSecurity implements PasswordSource {
  private readonly users = new Map<string, RuntimeUser>();
  private readonly groups = new Map<string, RuntimeGroup>();
  private readonly roles = new Map<string, RuntimeRole>();
  /** Parsed credentials by user name, rebuilt when a user changes. */
  private readonly entries = new Map<string, PasswordEntry>();
  private persistence: RuntimePersistence | undefined;
  private unread = false;
  private declared: DeclaredNames = NO_NAMES;
  private readonly listeners: Array<() => void> = [];
  private readonly recordListeners: Array<(record: RuntimeRecord) => void> = [];
  /** A hash no password matches, as costly as the ones setUser makes. */
  readonly standIn: PasswordHash = { kind: 'scrypt', ...DEFAULT_SCRYPT, salt: randomBytes(16), hash: randomBytes(32) };

  /** `changed` is called after every change (the permissions in force are rebuilt from it). */
  constructor(changed?: () => void) {
    if (changed) this.listeners.push(changed);
  }

  /**
   * From here on every change is written to `persistence` too. The stored items are read at the first use (the
   * store is recovered after the security layer is built) or by `readStored`.
   */
  attach(persistence: RuntimePersistence): void {
    this.persistence = persistence;
    this.unread = true;
  }

  /** Tells which names the configuration defines (again after a reload). */
  declare(names: DeclaredNames): void {
    this.declared = names;
  }

  /** Reads the stored items, replacing what is held (called once the store is recovered). */
  readStored(): void {
    if (!this.persistence) return;
    this.unread = false;
    this.users.clear();
    this.groups.clear();
    this.roles.clear();
    this.entries.clear();
    for (const [name, value] of this.persistence.load('role')) this.roles.set(name, value as RuntimeRole);
    for (const [name, value] of this.persistence.load('group')) this.groups.set(name, value as RuntimeGroup);
    for (const [name, value] of this.persistence.load('user')) {
      this.users.set(name, value as RuntimeUser);
      this.parse(name);
    }
    this.changed();
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Told of every record a change made here writes, cascades included (multi-core mode passes them on to the other
   * workers); not of those `applyRecord` and `replaceAll` write.
   */
  onRecord(listener: (record: RuntimeRecord) => void): void {
    this.recordListeners.push(listener);
  }

  /** Every item held, as records. */
  records(): RuntimeRecord[] {
    this.read();
    return [
      ...[...this.roles].map(([key, value]): RuntimeRecord => ({ kind: 'role', key, value })),
      ...[...this.groups].map(([key, value]): RuntimeRecord => ({ kind: 'group', key, value })),
      ...[...this.users].map(([key, value]): RuntimeRecord => ({ kind: 'user', key, value })),
    ];
  }

  /** A record written elsewhere (another worker): held, stored and in force here, without telling `onRecord`. */
  applyRecord(record: RuntimeRecord): void {
    this.read();
    this.hold(record);
    this.persist(record);
    this.changed();
  }

  /** Replaces every item held, and stored, with `records` (a worker given the broker's current set at start-up). */
  replaceAll(records: readonly RuntimeRecord[]): void {
    this.read();
    const next = new Set(records.map((r) => `${r.kind}\u0000${r.key}`));
    for (const old of this.records()) if (!next.has(`${old.kind}\u0000${old.key}`)) this.persist({ kind: old.kind, key: old.key });
    this.users.clear();
    this.groups.clear();
    this.roles.clear();
    this.entries.clear();
    for (const record of records) {
      this.hold(record);
      this.persist(record);
    }
    this.changed();
  }

  private hold({ kind, key, value }: RuntimeRecord): void {
    const map: Map<string, unknown> = kind === 'user' ? this.users : kind === 'group' ? this.groups : this.roles;
    if (value === undefined) map.delete(key);
    else map.set(key, value);
    if (kind === 'user') this.parse(key);
  }

  private persist({ kind, key, value }: RuntimeRecord): void {
    if (value === undefined) this.persistence?.delete(kind, key);
    else this.persistence?.save(kind, key, value);
  }

  /** A change made here: stored, and told to `onRecord`. */
  private write(record: RuntimeRecord): void {
    this.persist(record);
    for (const listener of this.recordListeners) listener(record);
  }

  private read(): void {
    if (this.unread) this.readStored();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  private parse(name: string): void {
    this.entries.delete(name);
    const credential = this.users.get(name)?.credential;
    if (credential === undefined) return;
    try {
      const entry = parsePasswordFile(`${name}:${credential}`, 'store').get(name);
      if (entry) this.entries.set(name, entry);
    } catch {
      // A damaged record: the user cannot log in (nothing else is affected).
    }
  }

  // --- PasswordSource: what the password provider asks ---

  /** The credentials of an enabled runtime user the configuration does not define; undefined otherwise. */
  get(username: string): PasswordEntry | undefined {
    this.read();
    const user = this.users.get(username);
    if (!user || user.disabled || this.declared.user(username)) return undefined;
    return this.entries.get(username);
  }

  /** The Client Identifier a user is bound to, if any. */
  clientIdOf(username: string): string | undefined {
    this.read();
    return this.users.get(username)?.clientId;
  }

  close(): void {}

  // --- reading ---

  getUser(name: string): Readonly<RuntimeUser> | undefined {
    this.read();
    return this.users.get(name);
  }

  getGroup(name: string): Readonly<RuntimeGroup> | undefined {
    this.read();
    return this.groups.get(name);
  }

  getRole(name: string): Readonly<RuntimeRole> | undefined {
    this.read();
    return this.roles.get(name);
  }

  listUsers(): string[] {
    this.read();
    return [...this.users.keys()].sort();
  }

  listGroups(): string[] {
    this.read();
    return [...this.groups.keys()].sort();
  }

  listRoles(): string[] {
    this.read();
    return [...this.roles.keys()].sort();
  }

  /** Users bound to `group`. */
  membersOf(group: string): string[] {
    this.read();
    return [...this.users].filter(([, u]) => u.groups.some((g) => g.name === group)).map(([name]) => name).sort();
  }

  /** Is `name` shadowed (defined by the configuration, which wins)? */
  isDeclared(kind: RecordKind, name: string): boolean {
    return this.declared[kind](name);
  }

  // --- changing ---

  private own(kind: RecordKind, name: string): void {
    checkName(kind, name);
    if (this.declared[kind](name)) throw new RuntimeSecurityError('declared', `${kind} "${name}" is defined by the configuration; change it there`);
  }

  private known(kind: 'group' | 'role', list: readonly Binding[]): void {
    const map = kind === 'group' ? this.groups : this.roles;
    for (const b of list) {
      if (!map.has(b.name) && !this.declared[kind](b.name)) throw new RuntimeSecurityError('notFound', `${kind} "${b.name}" does not exist`);
    }
  }

  /** Creates or changes a user (`create`: refuse an existing one; else: refuse a missing one; undefined: either). */
  async setUser(name: string, change: UserChange, create?: boolean): Promise<void> {
    this.read();
    this.own('user', name);
    const current = this.users.get(name);
    if (create === true && current) throw new RuntimeSecurityError('exists', `user "${name}" already exists`);
    if (create === false && !current) throw new RuntimeSecurityError('notFound', `user "${name}" does not exist`);
    const next: RuntimeUser = current ? { ...current, roles: [...current.roles], groups: [...current.groups] } : { roles: [], groups: [] };
    if (change.roles) next.roles = bindings(change.roles);
    if (change.groups) next.groups = bindings(change.groups);
    this.known('role', next.roles);
    this.known('group', next.groups);
    if (change.clientId === null || change.clientId === '') delete next.clientId;
    else if (change.clientId !== undefined) next.clientId = change.clientId;
    if (change.disabled !== undefined) next.disabled = change.disabled;
    if (change.textName !== undefined) next.textName = change.textName;
    if (change.textDescription !== undefined) next.textDescription = change.textDescription;
    if (change.password !== undefined) {
      const password = typeof change.password === 'string' ? Buffer.from(change.password) : change.password;
      let entry: PasswordEntry;
      try {
        entry = await createEntry(name, password);
      } catch (err) {
        throw new RuntimeSecurityError('invalid', (err as Error).message);
      }
      next.credential = formatEntry(entry).slice(name.length + 1);
      // Another change may have come while hashing: it is kept, only the password and the fields given here change.
      const meanwhile = this.users.get(name);
      if (meanwhile !== current) {
        if (create === true && meanwhile) throw new RuntimeSecurityError('exists', `user "${name}" already exists`);
        if (meanwhile && !change.roles) next.roles = meanwhile.roles;
        if (meanwhile && !change.groups) next.groups = meanwhile.groups;
      }
    }
    this.putUser(name, next);
  }

  private putUser(name: string, user: RuntimeUser): void {
    this.users.set(name, user);
    this.parse(name);
    this.write({ kind: 'user', key: name, value: user });
    this.changed();
  }

  deleteUser(name: string): void {
    this.read();
    this.own('user', name);
    if (!this.users.delete(name)) throw new RuntimeSecurityError('notFound', `user "${name}" does not exist`);
    this.entries.delete(name);
    this.write({ kind: 'user', key: name });
    this.changed();
  }

  /** Changes a user's bindings with `edit` (which returns the new user). */
  private editUser(name: string, edit: (user: RuntimeUser) => RuntimeUser): void {
    this.read();
    this.own('user', name);
    const user = this.users.get(name);
    if (!user) throw new RuntimeSecurityError('notFound', `user "${name}" does not exist`);
    const next = edit({ ...user, roles: [...user.roles], groups: [...user.groups] });
    this.known('role', next.roles);
    this.known('group', next.groups);
    this.putUser(name, next);
  }

  addUserRole(name: string, role: string, priority?: number): void {
    this.editUser(name, (u) => ({ ...u, roles: [...u.roles.filter((r) => r.name !== role), { name: role, ...(priority !== undefined && { priority }) }] }));
  }

  removeUserRole(name: string, role: string): void {
    this.editUser(name, (u) => ({ ...u, roles: u.roles.filter((r) => r.name !== role) }));
  }

  addUserGroup(name: string, group: string, priority?: number): void {
    this.editUser(name, (u) => ({ ...u, groups: [...u.groups.filter((g) => g.name !== group), { name: group, ...(priority !== undefined && { priority }) }] }));
  }

  removeUserGroup(name: string, group: string): void {
    this.editUser(name, (u) => ({ ...u, groups: u.groups.filter((g) => g.name !== group) }));
  }

  setGroup(name: string, group: GroupChange, create?: boolean): void {
    this.read();
    this.own('group', name);
    const current = this.groups.get(name);
    if (create === true && current) throw new RuntimeSecurityError('exists', `group "${name}" already exists`);
    if (create === false && !current) throw new RuntimeSecurityError('notFound', `group "${name}" does not exist`);
    const next: RuntimeGroup = { ...current, roles: group.roles ? bindings(group.roles) : [...(current?.roles ?? [])] };
    if (group.textName !== undefined) next.textName = group.textName;
    if (group.textDescription !== undefined) next.textDescription = group.textDescription;
    this.known('role', next.roles);
    this.groups.set(name, next);
    this.write({ kind: 'group', key: name, value: next });
    this.changed();
  }

  /** Deletes a group; its members lose it. */
  deleteGroup(name: string): void {
    this.read();
    this.own('group', name);
    if (!this.groups.delete(name)) throw new RuntimeSecurityError('notFound', `group "${name}" does not exist`);
    this.write({ kind: 'group', key: name });
    for (const [user, u] of this.users) {
      if (u.groups.some((g) => g.name === name)) this.putQuietly(user, { ...u, groups: u.groups.filter((g) => g.name !== name) });
    }
    this.changed();
  }

  addGroupRole(name: string, role: string, priority?: number): void {
    const group = this.requireGroup(name);
    this.setGroup(name, { roles: [...group.roles.filter((r) => r.name !== role), { name: role, ...(priority !== undefined && { priority }) }] }, false);
  }

  removeGroupRole(name: string, role: string): void {
    const group = this.requireGroup(name);
    this.setGroup(name, { roles: group.roles.filter((r) => r.name !== role) }, false);
  }

  private requireGroup(name: string): RuntimeGroup {
    this.read();
    this.own('group', name);
    const group = this.groups.get(name);
    if (!group) throw new RuntimeSecurityError('notFound', `group "${name}" does not exist`);
    return group;
  }

  setRole(name: string, role: RoleChange, create?: boolean): void {
    this.read();
    this.own('role', name);
    const current = this.roles.get(name);
    if (create === true && current) throw new RuntimeSecurityError('exists', `role "${name}" already exists`);
    if (create === false && !current) throw new RuntimeSecurityError('notFound', `role "${name}" does not exist`);
    for (const rule of role.rules ?? []) checkRule(rule);
    const next: RuntimeRole = { ...current, rules: role.rules ? role.rules.map((r) => ({ ...r, actions: [...r.actions] })) : [...(current?.rules ?? [])] };
    if (role.textName !== undefined) next.textName = role.textName;
    if (role.textDescription !== undefined) next.textDescription = role.textDescription;
    this.roles.set(name, next);
    this.write({ kind: 'role', key: name, value: next });
    this.changed();
  }

  /** Deletes a role; users and groups bound to it lose it. */
  deleteRole(name: string): void {
    this.read();
    this.own('role', name);
    if (!this.roles.delete(name)) throw new RuntimeSecurityError('notFound', `role "${name}" does not exist`);
    this.write({ kind: 'role', key: name });
    for (const [user, u] of this.users) {
      if (u.roles.some((r) => r.name === name)) this.putQuietly(user, { ...u, roles: u.roles.filter((r) => r.name !== name) });
    }
    for (const [group, g] of this.groups) {
      if (g.roles.some((r) => r.name === name)) {
        const next = { ...g, roles: g.roles.filter((r) => r.name !== name) };
        this.groups.set(group, next);
        this.write({ kind: 'group', key: group, value: next });
      }
    }
    this.changed();
  }

  private putQuietly(name: string, user: RuntimeUser): void {
    this.users.set(name, user);
    this.write({ kind: 'user', key: name, value: user });
  }

  /**
   * The permissions of `declared` with the runtime items added: a role, group or user binding the configuration
   * defines stays the configuration's; the others come from here, roles and groups in priority order and each
   * role's rules too.
   */
  overlay(declared: AclConfig): AclConfig {
    this.read();
    const roles: Record<string, readonly AclRule[]> = { ...declared.roles };
    const groups = { ...declared.groups };
    const users: Record<string, AclUser> = { ...declared.users };
    for (const [name, role] of this.roles) {
      if (name in roles) continue;
      roles[name] = byPriority(role.rules).map(({ priority: _p, ...rule }) => rule);
    }
    for (const [name, group] of this.groups) {
      if (name in groups) continue;
      groups[name] = { roles: byPriority(group.roles).map((b) => b.name) };
    }
    for (const [name, user] of this.users) {
      if (name in users || this.declared.user(name)) continue;
      users[name] = { roles: byPriority(user.roles).map((b) => b.name), groups: byPriority(user.groups).map((b) => b.name) };
    }
    return { ...declared, roles, groups, users };
  }
}
