import type net from 'node:net';
import type { Broker } from '../broker/broker.js';
import type { Logger } from '../broker/logger.js';
import { affineClientIdAssigner } from './affinity.js';
import { ConnectionRelay } from './connection-relay.js';
import { PeerRoutingLinks } from './peer-routing.js';
import { WorkerSysAggregation } from './sys-aggregation.js';
import type { PrimaryToWorker, WorkerToPrimary } from './messages.js';
import { WorkerBans, type BanAuthority } from './shared-bans.js';
import { REVISION_RECORD, WorkerRuntime } from './shared-runtime.js';
import type { ControlForwarder } from './shared-control.js';
import { answerQuery, type QueryHandlers } from './worker-queries.js';
import { brokerFigures, isSecurityEvent, localAdminBackend, localAdminUsers, processFigures, type ApiReloadResult } from '../admin/index.js';
import type { AuditLog } from '../security/audit.js';
import { HttpError } from '../admin/server.js';
import type { Security } from '../security/index.js';
import type { RuntimeSecurity } from '../security/runtime-store.js';

/** What a worker process learns from its environment (set by the primary). */
export interface WorkerPlace {
  index: number;
  workers: number;
  socketDir: string;
  /** Hex: proves a connection to a worker's relay socket comes from another worker of this broker. */
  relaySecret: string;
}

const ENV_INDEX = 'MOAT_WORKER_INDEX';
/** How long a worker whose peer link broke waits for a 'shutdown' from the primary before stopping with status 1. */
const LINK_LOST_GRACE_MS = 1000;
const ENV_WORKERS = 'MOAT_WORKERS';
const ENV_SOCKET_DIR = 'MOAT_WORKER_SOCKETS';
const ENV_RELAY_SECRET = 'MOAT_WORKER_RELAY_SECRET';

/** This process's place among the workers, or undefined if it is not a worker. */
/** A worker's security audit events, sent to the primary for the admin listener's feed (the rest stays in the trail). */
export function securityEventsToPrimary(): AuditLog {
  return {
    record(event) {
      if (isSecurityEvent(event) && process.connected) process.send?.({ type: 'audit', event } satisfies WorkerToPrimary);
    },
  };
}

export function workerPlace(env: NodeJS.ProcessEnv = process.env): WorkerPlace | undefined {
  const index = env[ENV_INDEX];
  if (index === undefined || process.send === undefined) return undefined;
  return { index: Number(index), workers: Number(env[ENV_WORKERS]), socketDir: env[ENV_SOCKET_DIR] ?? '', relaySecret: env[ENV_RELAY_SECRET] ?? '' };
}

export function workerEnvironment(place: WorkerPlace): Record<string, string> {
  return {
    [ENV_INDEX]: String(place.index), [ENV_WORKERS]: String(place.workers), [ENV_SOCKET_DIR]: place.socketDir,
    [ENV_RELAY_SECRET]: place.relaySecret,
  };
}

/**
 * The broker options a worker adds: no listeners of its own, peers, identifiers that map back to it, and the relay
 * that passes connections whose transport ran here (TLS, WebSocket, PROXY) to the worker that owns them.
 * `limits`: the broker's connect timeout and packet size limit, read per connection.
 */
export function workerBrokerOptions(place: WorkerPlace, logger: Logger, limits: () => { connectTimeout: number; maxPacketSize: number }): {
  links: PeerRoutingLinks; relay: ConnectionRelay; sys: WorkerSysAggregation;
  options: {
    bindListeners: false; peers: PeerRoutingLinks; connectionRouting: ConnectionRelay; sysAggregation: WorkerSysAggregation; assignClientId: () => string;
  };
} {
  const links = new PeerRoutingLinks({ ...place, logger });
  const relay = new ConnectionRelay({ ...place, logger, limits });
  const sys = new WorkerSysAggregation(place.index, (report) => {
    if (process.connected) process.send?.({ type: 'sys-report', report } satisfies WorkerToPrimary);
  });
  return {
    links, relay, sys,
    options: {
      bindListeners: false, peers: links, connectionRouting: relay, sysAggregation: sys, assignClientId: affineClientIdAssigner(place.index, place.workers),
    },
  };
}

/**
 * How a worker answers the primary's questions for the admin listener: its figures for /metrics, admin logins
 * judged by its own authentication chain (guard included) and ACL, as one process judges them, the REST API's calls
 * on its own broker (the same backend one process uses), and a reload (`reload`: as SIGHUP, with what it did).
 */
export function workerQueryHandlers(broker: Broker, security: Security, reload: () => ApiReloadResult): QueryHandlers {
  const users = localAdminUsers(security.hooks.find((h) => h.authenticate)?.authenticate, () => security.acl);
  const backend = localAdminBackend(broker, security);
  return {
    figures: async () => {
      const figures = brokerFigures(broker, security.guard);
      return { broker: figures, process: await processFigures() };
    },
    'admin-login': (query) => users(query.login),
    admin: async ({ call }) => {
      try {
        const method = backend[call.method] as (...args: unknown[]) => Promise<unknown>;
        return { value: await method(...call.args) };
      } catch (err) {
        // The refusal crosses as data; the primary throws it again, with its status.
        if (err instanceof HttpError) return { status: err.status, error: err.message };
        throw err;
      }
    },
    reload: () => reload(),
    control: ({ payload, caller }) => {
      if (!security.dynamicSecurity) throw new Error('dynamic security is off in worker 0');
      return security.dynamicSecurity.execute(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), caller);
    },
  };
}

/**
 * Runs the worker side: recovers the broker's state, opens its relay socket, links to the other workers, tells
 * the primary it is ready (with the bans and runtime users, groups and roles it has stored), then serves the sockets
 * the primary hands over (each with the bytes the primary read to choose this worker) until told to stop.
 * `shared.guard`: its bans are shared with the other workers through the primary; `shared.runtime`: its users,
 * groups and roles too (changed in worker 0 through the API).
 */
export async function serveAsWorker(
  broker: Broker, parts: { links: PeerRoutingLinks; relay: ConnectionRelay; sys: WorkerSysAggregation }, reload: () => void, logger: Logger,
  shared: { guard?: BanAuthority | undefined; runtime?: RuntimeSecurity | undefined; control?: ControlForwarder | undefined }, queries?: QueryHandlers,
): Promise<void> {
  const { links, relay, sys } = parts;
  const send = (message: WorkerToPrimary): void => {
    if (process.connected) process.send?.(message);
  };
  const bans = new WorkerBans(shared.guard, send);
  const runtime = new WorkerRuntime(shared.runtime, {
    load: () => Number(broker.records.get(REVISION_RECORD.kind)?.get(REVISION_RECORD.key) ?? 0),
    save: (revision) => broker.saveRecord(REVISION_RECORD.kind, REVISION_RECORD.key, revision),
  }, send);
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    links.beginClose();
    try {
      await broker.close();
      await relay.close();
      await links.close();
    } catch (err) {
      logger.error({ err }, 'error during worker shutdown');
      code = 1;
    }
    process.exit(code);
  };
  process.on('message', (message: PrimaryToWorker, handle: unknown) => {
    if (bans.handle(message) || runtime.handle(message) || shared.control?.handle(message)) return;
    switch (message.type) {
      case 'socket': {
        const socket = handle as net.Socket | undefined;
        if (!socket) return;
        // What the primary read comes first, before anything this process reads from the socket.
        if (message.head.length > 0) socket.unshift(Buffer.from(message.head.buffer, message.head.byteOffset, message.head.byteLength));
        broker.acceptOn(message.listener, socket);
        return;
      }
      case 'reload':
        reload();
        return;
      case 'sys-report':
        sys.received(message.index, message.report);
        return;
      case 'ticket-keys':
        broker.setTicketKeys(Buffer.from(message.keys.buffer, message.keys.byteOffset, message.keys.byteLength));
        return;
      case 'shutdown':
        void stop(0);
        return;
      case 'query':
        if (queries) answerQuery(message, queries, send);
        else send({ type: 'reply', id: message.id, error: 'this worker answers no queries' });
        return;
    }
  });
  // The primary's /readyz: a worker past its memory high-water mark refuses new clients.
  broker.on('overload', (overloaded) => send({ type: 'overload', overloaded }));
  // The primary went away: nobody hands out sockets any more.
  process.on('disconnect', () => void stop(0));
  // Without its link to a peer this worker would deliver only part of what is published: the primary
  // sees it exit and stops the broker. A peer that closes because the broker is stopping cuts the link
  // too, sometimes before this worker has read its own 'shutdown': that one gets a moment to arrive.
  links.onLinkLost = () => {
    setTimeout(() => void stop(1), LINK_LOST_GRACE_MS).unref();
  };
  // Signals to the process group (Ctrl-C, systemd's SIGTERM, SIGHUP) reach the workers too:
  // the primary decides how they stop and forwards the reload, so the workers ignore them.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});
  try {
    await broker.listen();
    await relay.start(broker);
    await links.start(broker);
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'worker failed to start');
    send({ type: 'failed', reason: (err as Error).message });
    process.exit(1);
  }
  const stored = runtime.stored();
  send({ type: 'ready', bans: bans.stored(), ...(stored && { runtime: stored }) });
}
