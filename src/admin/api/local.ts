import type { Broker } from '../../broker/broker.js';
import type { Message } from '../../broker/message.js';
import type { RuntimeSecurity, Security } from '../../security/index.js';
import type { RecordKind } from '../../security/runtime-store.js';
import { HttpError } from '../server.js';
import type { AdminBackend, Found, Gathered, RetainedView, RuntimeChanges, RuntimeItemJson } from '../view.js';
import { addBan, guardOf } from './bans.js';
import { groupJson } from './groups.js';
import { roleJson } from './roles.js';
import { runtimeCall, runtimeCallAsync, runtimeOf } from './runtime.js';
import { userJson } from './users.js';

/**
 * The REST API's backend in one process, over this process's broker and security layer. In multi-core mode each
 * worker has one too, and answers the primary's questions with it (src/multicore/worker.ts).
 */

/** Each kind of runtime item on the store: its names, its JSON, its change and its removal. */
interface ItemKind<K extends RecordKind> {
  list(runtime: RuntimeSecurity): string[];
  json(runtime: RuntimeSecurity, name: string): RuntimeItemJson;
  set(runtime: RuntimeSecurity, name: string, change: RuntimeChanges[K], create: boolean): void | Promise<void>;
  remove(runtime: RuntimeSecurity, name: string): void;
}

const ITEM_KINDS: { [K in RecordKind]: ItemKind<K> } = {
  user: { list: (r) => r.listUsers(), json: userJson, set: (r, n, c, create) => r.setUser(n, c, create), remove: (r, n) => r.deleteUser(n) },
  group: { list: (r) => r.listGroups(), json: groupJson, set: (r, n, c, create) => r.setGroup(n, c, create), remove: (r, n) => r.deleteGroup(n) },
  role: { list: (r) => r.listRoles(), json: roleJson, set: (r, n, c, create) => r.setRole(n, c, create), remove: (r, n) => r.deleteRole(n) },
};

const all = <T>(items: Iterable<T>): Gathered<T> => ({ items: [...items], missing: [] });
const one = <T>(item: T | undefined): Found<T> => ({ item, missing: [] });

function retainedView(m: Message): RetainedView {
  return {
    topic: m.topic, qos: m.qos, payload: m.payload,
    ...(m.expiresAt !== undefined && { expiresAt: m.expiresAt }), ...(m.properties !== undefined && { properties: m.properties }),
  };
}

export function localAdminBackend(broker: Broker, security: Security): AdminBackend {
  const connected = (id: string) => {
    for (const c of broker.connectedClients()) if (c.id === id) return c;
    return undefined;
  };
  const retained = (filters: readonly string[]): RetainedView[] => {
    const found = new Map<string, RetainedView>();
    const now = Date.now();
    for (const filter of filters) broker.retained.match(filter, now, (m) => void found.set(m.topic, retainedView(m)));
    return [...found.values()];
  };
  const runtime = (): RuntimeSecurity => runtimeOf(security.runtime);
  const kind = <K extends RecordKind>(k: K): ItemKind<K> => ITEM_KINDS[k] as ItemKind<K>;
  return {
    clients: async () => all(broker.connectedClients()),
    client: async (id) => {
      const client = connected(id);
      return one(client && { client, session: broker.sessionView(id) });
    },
    disconnect: async (id, reason) => {
      const client = connected(id);
      if (client) broker.disconnectClient(id, reason);
      return one(client);
    },
    sessions: async () => all(broker.sessionViews()),
    session: async (id) => one(broker.sessionView(id)),
    removeSession: async (id) => {
      const session = broker.sessionView(id);
      if (session) broker.removeSession(id);
      return one(session);
    },
    retained: async (filters) => all(retained(filters)),
    deleteRetained: async (topic) => {
      const [message] = retained([topic]);
      // As a client's empty retained publish: removed here and from the store, and routed to subscribers as one.
      if (message) broker.publish({ topic, payload: Buffer.alloc(0), qos: 0, retain: true });
      return one(message);
    },
    bans: async () => all(guardOf(security.guard).bans.list()),
    ban: async (banKind, value, reason, seconds) => addBan(guardOf(security.guard), banKind, value, reason, seconds),
    unban: async (banKind, value) => {
      const guard = guardOf(security.guard);
      const ban = guard.bans.list().find((b) => b.kind === banKind && b.value === value);
      if (ban?.source === 'config') throw new HttpError(409, 'this ban is in the configuration file (guard.bans); remove it there and reload');
      return guard.unban(banKind, value);
    },
    items: async (k) => {
      const r = runtime();
      return kind(k).list(r).map((name) => kind(k).json(r, name));
    },
    item: async (k, name) => kind(k).json(runtime(), name),
    setItem: async (k, name, change, create) => {
      const r = runtime();
      await runtimeCallAsync(async () => kind(k).set(r, name, change, create));
      return kind(k).json(r, name);
    },
    removeItem: async (k, name) => runtimeCall(() => kind(k).remove(runtime(), name)),
  };
}
