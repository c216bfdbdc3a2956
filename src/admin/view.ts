import type { Broker, ConnectedClientView, ListenerAddress, SessionView } from '../broker/broker.js';
import type { Properties } from '../protocol/index.js';
import type { Ban, BanKind, Guard } from '../security/guard/index.js';
import type { GroupChange, RecordKind, RoleChange, UserChange } from '../security/runtime-store.js';
import { brokerFigures, type MetricsSource, type ScrapeFigures } from './figures.js';
import { readiness, type Readiness } from './health.js';

/**
 * The broker as the admin listener sees it: the seam between the admin routes and where the broker runs. One
 * process: `localBrokerView`, read from the broker object. Multi-core mode: the primary's view
 * (src/multicore/admin-view.ts), which holds no broker and asks the workers over IPC, summing their answers.
 * The REST API reads and acts through its own seam, `AdminBackend` (below), with the same two sides.
 */
export interface BrokerView extends MetricsSource {
  /** /readyz: every part serving, none shedding load. Synchronous: probes come every few seconds and must not wait. */
  readiness(): Readiness;
  /** GET /api/v1/broker. */
  info(): Promise<BrokerInfo>;
}

export interface BrokerInfo {
  version: string;
  uptime_seconds: number;
  listeners: ListenerAddress[];
  ready: boolean;
  /** Multi-core mode: each worker and its state. */
  workers?: Array<{ index: number; pid: number | undefined; state: WorkerState }>;
  /** Connected clients and sessions held (multi-core mode: of the workers that answered in time). */
  connected_clients?: number;
  sessions?: number;
  /** Multi-core mode: some worker did not answer in time, and these figures leave it out. */
  partial?: boolean;
  workers_missing?: number[];
}

/** A worker as the primary knows it: starting (not yet ready), ready, overloaded (refusing newcomers), stopped. */
export type WorkerState = 'starting' | 'ready' | 'overloaded' | 'stopped';

/** The broker of this process. */
export function localBrokerView(broker: Broker, guard: Guard | undefined): BrokerView {
  return {
    readiness: () => readiness(broker),
    read: (): ScrapeFigures => ({ broker: brokerFigures(broker, guard) }),
    info: () => Promise.resolve({
      version: broker.version,
      uptime_seconds: Math.floor((Date.now() - broker.stats.startedAt) / 1000),
      listeners: broker.addresses,
      ready: readiness(broker).ready,
    }),
  };
}

/**
 * What the REST API (src/admin/api/) reads and acts on, the seam between its routes and where the broker runs. One
 * process: `localAdminBackend` (src/admin/api/local.ts) over this process's broker and security layer. Multi-core mode:
 * the primary's (src/multicore/admin-backend.ts), which asks each worker's local backend over IPC and merges the
 * answers. Answers are plain data, as they cross IPC. Lists and lookups name the workers that did not answer in time
 * (`missing`, always empty in one process), so an answer never leaves a worker out silently; a refusal is an HttpError,
 * whose status crosses IPC too.
 */
export interface AdminBackend {
  /** Connected clients (CONNECT accepted). */
  clients(): Promise<Gathered<ConnectedClientView>>;
  /** One connected client, with its session. */
  client(id: string): Promise<Found<ClientDetail>>;
  /** Disconnects a connected client by administrative action (0x98); the client it was. */
  disconnect(id: string, reason?: string): Promise<Found<ConnectedClientView>>;
  /** Sessions held, online and offline. */
  sessions(): Promise<Gathered<SessionView>>;
  session(id: string): Promise<Found<SessionView>>;
  /** Ends a session as its expiry would (a connected client is disconnected first); the session it was. */
  removeSession(id: string): Promise<Found<SessionView>>;
  /** Retained messages on topics matching any of `filters`, once each. */
  retained(filters: string[]): Promise<Gathered<RetainedView>>;
  /** Removes a retained message as an empty retained publish would; the message it was. */
  deleteRetained(topic: string): Promise<Found<RetainedView>>;
  /** The guard's bans in force (HttpError 409 when the guard is off). */
  bans(): Promise<Gathered<Ban>>;
  ban(kind: BanKind, value: string, reason: string, seconds?: number): Promise<Ban>;
  /** False: no such ban (HttpError 409 for a ban of the configuration file). */
  unban(kind: BanKind, value: string): Promise<boolean>;
  /** Runtime users, groups and roles (HttpError 409 when the runtime store is off), each as the API shows it. */
  items(kind: RecordKind): Promise<RuntimeItemJson[]>;
  item(kind: RecordKind, name: string): Promise<RuntimeItemJson>;
  /** Creates (`create`), or changes an existing one; the item as it is now. */
  setItem<K extends RecordKind>(kind: K, name: string, change: RuntimeChanges[K], create: boolean): Promise<RuntimeItemJson>;
  removeItem(kind: RecordKind, name: string): Promise<void>;
}

/** A list from where the broker runs; `missing`: the workers that did not answer in time (their items are not in it). */
export interface Gathered<T> {
  items: T[];
  missing: number[];
}

/** One item looked up where the broker runs; undefined if none of those that answered has it (`missing`: those that did not). */
export interface Found<T> {
  item: T | undefined;
  missing: number[];
}

/** No answer in time from these workers, and the answer cannot be given without them (the API says 503, naming them). */
export class WorkersMissing extends Error {
  constructor(readonly missing: number[], message: string) {
    super(message);
  }
}

export interface ClientDetail {
  client: ConnectedClientView;
  session: SessionView | undefined;
}

/** A retained message as plain data. */
export interface RetainedView {
  topic: string;
  qos: number;
  payload: Uint8Array;
  /** Epoch ms it expires (MQTT 5 Message Expiry Interval). */
  expiresAt?: number;
  properties?: Properties;
}

/** What changes a runtime user, group or role. */
export interface RuntimeChanges {
  user: UserChange;
  group: GroupChange;
  role: RoleChange;
}

/** A runtime user, group or role as the API shows it (built where the runtime store is: a password hash never leaves it). */
export type RuntimeItemJson = Record<string, unknown>;
