import { fork, type ChildProcess } from 'node:child_process';
import { CONTROL_QUERY_TIMEOUT_MS } from './shared-control.js';
import type { AuditEvent } from '../security/audit.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ListenerAddress } from '../broker/broker.js';
import type { Logger } from '../broker/logger.js';
import type { WorkerState } from '../admin/view.js';
import { closeServer, endpointName, listenOn, type Endpoint } from '../transport/server.js';
import { TicketKeyRotation } from '../transport/ticket-keys.js';
import { workerFor } from './affinity.js';
import { peekClientId } from './connect-peek.js';
import type { PrimaryToWorker, WorkerToPrimary } from './messages.js';
import { SharedBans, type WorkerChannels } from './shared-bans.js';
import { SharedRuntime } from './shared-runtime.js';
import { WorkerQueries } from './worker-queries.js';
import { workerEnvironment } from './worker.js';

/**
 * Stops a socket reading at the handle. `pause()` alone only stops 'data' events: the stream
 * would go on reading up to its high-water mark, and restart reading from `_read`.
 */
function stopReading(socket: net.Socket): void {
  socket.pause();
  const internals = socket as unknown as { _handle?: { reading?: boolean; readStop?: () => number }; _read: () => void };
  internals._read = () => {};
  if (internals._handle?.readStop) {
    internals._handle.reading = false;
    internals._handle.readStop();
  }
}

export interface PrimaryOptions {
  workers: number;
  /**
   * `routed`: plain MQTT on the socket, read by the primary up to the Client Identifier and handed to the worker that
   * owns it; otherwise (TLS, WebSocket, PROXY) handed at once to the next worker in turn, which relays the client to
   * its owner once its transport has run (src/multicore/connection-relay.ts). `tls`: ticket keys are needed.
   */
  listeners: Array<{ name?: string; endpoint: Endpoint; routed: boolean; tls?: boolean }>;
  /** Seconds a new connection has to send the start of its CONNECT. */
  connectTimeout: number;
  /** The largest packet the workers accept: a CONNECT can be read up to that far for its identifier. */
  maxPacketSize: number;
  logger: Logger;
  /** The command line the workers run (this program and its arguments). */
  script: string;
  args: string[];
  /** Runs once the listeners are bound, before any worker starts (the CLI takes the store lock here); a throw fails the start. */
  beforeWorkers?: () => void | Promise<void>;
  /** A worker's security audit event, for the admin listener's feed (the workers write the audit trail themselves). */
  onSecurityEvent?: (event: AuditEvent) => void;
}

/** Connections held while the workers start; more are closed at once. */
const MAX_WAITING_SOCKETS = 10_000;
/** A worker that does not stop within this time after being asked is killed. */
const STOP_TIMEOUT_MS = 15_000;

/**
 * The primary of multi-core mode: starts the workers, accepts every connection,
 * reads just enough of its CONNECT to learn the Client Identifier, and hands the socket
 * to the worker that owns that identifier (`workerFor`), so a client's session always
 * lives in one worker. A connection it cannot read (TLS, WebSocket, PROXY) goes to the
 * workers in turn, which relay it to its owner. Connections without an identifier go round robin (the worker
 * assigns one that maps back to it). The primary holds no MQTT state itself; it relays the
 * bans each worker's guard sets to the others and keeps the table of those in force (`bans`), and answers for the
 * whole broker to the admin listener (`queries`, `workerStates`; src/multicore/admin-view.ts).
 */
export class Primary {
  private readonly workers: ChildProcess[] = [];
  private readonly servers: net.Server[] = [];
  private readonly socketDir = mkdtempSync(path.join(os.tmpdir(), 'moat-workers-'));
  private roundRobin = 0;
  /** Proves a connection to a worker's relay socket comes from another worker (connection-relay.ts). */
  private readonly relaySecret = randomBytes(32);
  /** Session ticket keys for TLS and wss listeners: one set for all workers, rotated here. */
  private readonly ticketKeys = new TicketKeyRotation((keys) => {
    for (const child of this.workers) if (child.connected) child.send({ type: 'ticket-keys', keys } satisfies PrimaryToWorker);
  });
  private isStopping = false;
  /** Each worker's state as the primary knows it: starting until it said it is ready, stopped once it exited. */
  private readonly states: Array<'starting' | 'ready' | 'stopped'> = [];
  /** Each worker's overload state, as it reports it (memory past its high-water mark: new clients refused). */
  private readonly overloaded: boolean[] = [];
  private bound: ListenerAddress[] = [];
  private isStarted = false;
  readonly startedAt = Date.now();
  /** Resolves with the exit code the primary should end with. */
  readonly done: Promise<number>;
  private finish: (code: number) => void = () => {};
  /** The bans in force in every worker; a program here (the admin API) lists, adds and lifts them through it. */
  private readonly channels: WorkerChannels = {
    count: () => this.workers.length,
    send: (index, message) => {
      const child = this.workers[index];
      if (!child?.connected) return false;
      child.send(message);
      return true;
    },
  };
  readonly bans: SharedBans = new SharedBans(this.channels);
  /** Runtime users, groups and roles: the newest stored set given to every worker at start-up, each change passed on. */
  private readonly runtime = new SharedRuntime(this.channels);
  /** Questions to the workers, with a timeout each (the admin listener's figures and logins). */
  readonly queries: WorkerQueries = new WorkerQueries(this.channels);

  constructor(private readonly options: PrimaryOptions) {
    this.done = new Promise((resolve) => (this.finish = resolve));
  }

  /** Every worker ready and the connections that waited handed over. */
  get started(): boolean {
    return this.isStarted;
  }

  get stopping(): boolean {
    return this.isStopping;
  }

  /** The listeners bound (empty until they are). */
  get listening(): ListenerAddress[] {
    return this.bound;
  }

  /** Each worker (all of them, once started), with its process id and state. */
  workerStates(): Array<{ index: number; pid: number | undefined; state: WorkerState }> {
    return Array.from({ length: this.options.workers }, (_, index) => ({
      index, pid: this.workers[index]?.pid, state: this.states[index] === 'ready' && this.overloaded[index] ? 'overloaded' : this.states[index] ?? 'starting',
    }));
  }

  /**
   * Binds every listener first (a port in use fails the start before any worker touches its store), then
   * starts the workers and waits until each has recovered its state and linked to the others; connections
   * that arrive meanwhile are handed over once they have.
   */
  async start(): Promise<Array<{ name: string; host: string; port: number }>> {
    const { workers, script, args, logger } = this.options;
    const bound: Array<{ name: string; host: string; port: number; path?: string }> = [];
    let waiting: Array<[net.Socket, number]> | undefined = [];
    try {
      for (const [index, listener] of this.options.listeners.entries()) {
        const name = listener.name ?? endpointName(listener.endpoint);
        const server = net.createServer({ noDelay: true }, (socket) => {
          if (!waiting) return this.dispatch(socket, index);
          // Until the workers are ready: a reset is the socket's end, never the primary's.
          socket.on('error', () => socket.destroy());
          if (waiting.length >= MAX_WAITING_SOCKETS) socket.destroy();
          else waiting.push([socket, index]);
        });
        this.servers.push(server);
        const address = await listenOn(server, listener.endpoint, name);
        bound.push('path' in listener.endpoint ? { name, host: listener.endpoint.path, port: 0, path: listener.endpoint.path } : { name, host: address.address, port: address.port });
      }
      this.bound = bound;
      await this.options.beforeWorkers?.();
    } catch (err) {
      await this.stop(1);
      throw err;
    }
    const ready: Array<Promise<void>> = [];
    for (let index = 0; index < workers; index++) {
      const child = fork(script, args, {
        env: { ...process.env, ...workerEnvironment({ index, workers, socketDir: this.socketDir, relaySecret: this.relaySecret.toString('hex') }) },
        serialization: 'advanced',
        stdio: 'inherit',
      });
      this.workers.push(child);
      this.states.push('starting');
      // A send to a worker that has just died fails here instead of taking the primary down.
      child.on('error', (err) => logger.error({ worker: index, err: err.message }, 'multi-core: IPC with a worker failed'));
      ready.push(new Promise<void>((resolve, reject) => {
        child.on('message', (message: WorkerToPrimary) => {
          if (this.bans.received(index, message) || this.runtime.received(index, message) || this.queries.received(message)) return;
          if (message.type === 'control-request') {
            // Carried out by worker 0, the one writer of runtime users; the answer goes back to the asking worker.
            const reply = (answer: Extract<PrimaryToWorker, { type: 'control-answer' }>): void => {
              if (this.workers[index]?.connected) this.workers[index]!.send(answer);
            };
            this.queries.ask(0, { kind: 'control', payload: message.payload, caller: message.caller }, CONTROL_QUERY_TIMEOUT_MS).then(
              (answer) => reply({ type: 'control-answer', id: message.id, answer }),
              (err: unknown) => reply({ type: 'control-answer', id: message.id, error: (err as Error).message }),
            );
            return;
          }
          if (message.type === 'audit') {
            this.options.onSecurityEvent?.(message.event);
            return;
          }
          if (message.type === 'overload') {
            this.overloaded[index] = message.overloaded;
            return;
          }
          if (message.type === 'sys-report') {
            const publisher = this.workers[0];
            if (publisher?.connected) publisher.send({ type: 'sys-report', index, report: message.report } satisfies PrimaryToWorker);
            return;
          }
          if (message.type === 'ready') {
            if (this.states[index] === 'starting') this.states[index] = 'ready';
            this.bans.merge(message.bans);
            this.runtime.merge(message.runtime);
            resolve();
          }
          if (message.type === 'failed') reject(new Error(`worker ${index}: ${message.reason}`));
        });
        child.once('exit', (code, signal) => {
          this.states[index] = 'stopped';
          reject(new Error(`worker ${index} exited (${signal ?? `code ${code}`}) while starting`));
          if (!this.isStopping) {
            logger.error({ worker: index, code, signal }, 'multi-core: a worker stopped; stopping the broker');
            void this.stop(1);
          }
        });
      }));
    }
    try {
      await Promise.all(ready);
    } catch (err) {
      for (const [socket] of waiting) socket.destroy();
      await this.stop(1);
      throw err;
    }
    // Every worker holds the bans any of them had stored, and the newest set of runtime users, before it is handed a connection.
    this.bans.distribute();
    this.runtime.distribute();
    if (this.options.listeners.some((l) => l.tls)) this.ticketKeys.start();
    const early = waiting;
    waiting = undefined;
    for (const [socket, index] of early) if (!socket.destroyed) this.dispatch(socket, index);
    this.isStarted = true;
    for (const { name, host, port, path } of bound) {
      const listener = this.options.listeners[bound.findIndex((b) => b.name === name)];
      logger.info({ listener: name, ...(path !== undefined ? { path } : { host, port }), tls: listener?.tls === true, workers }, 'listening');
    }
    return bound;
  }

  /** Asks every worker to close its broker (clients are told, state is made durable), then ends. */
  async stop(code: number): Promise<void> {
    if (this.isStopping) return;
    this.isStopping = true;
    this.bans.close();
    this.queries.close();
    this.ticketKeys.stop();
    // Not awaited: a server that handed sockets to workers counts them as its own until the
    // workers have closed them, which they do only once told to stop.
    for (const server of this.servers) void closeServer(server);
    await Promise.all(this.workers.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      child.once('exit', (exitCode) => {
        clearTimeout(timer);
        if (exitCode !== 0) code = 1;
        resolve();
      });
      if (child.connected) child.send({ type: 'shutdown' } satisfies PrimaryToWorker);
      else child.kill('SIGTERM');
    })));
    rmSync(this.socketDir, { recursive: true, force: true });
    this.finish(code);
  }

  /** Asks every worker to reload its configuration (SIGHUP); the API asks each over `queries`, to hear what it did. */
  reload(): void {
    for (const child of this.workers) if (child.connected) child.send({ type: 'reload' } satisfies PrimaryToWorker);
  }

  /** The limits the primary applies itself (what it reads of a CONNECT), after a reload. */
  setLimits(limits: { connectTimeout: number; maxPacketSize: number }): void {
    Object.assign(this.options, limits);
  }

  private dispatch(socket: net.Socket, listener: number): void {
    if (!this.options.listeners[listener]?.routed) {
      this.handOver(socket, listener, this.roundRobin++ % this.workers.length, Buffer.alloc(0));
      return;
    }
    let head: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), this.options.connectTimeout * 1000);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => clearTimeout(timer));
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const peeked = peekClientId(head);
      // The identifier comes before the will and the credentials, so a CONNECT the workers would
      // accept has it within their packet size limit.
      if (peeked === 'more' && head.length < this.options.maxPacketSize + 5) return;
      clearTimeout(timer);
      socket.off('data', onData);
      const index = typeof peeked === 'object' && peeked.clientId.length > 0
        ? workerFor(peeked.clientId, this.workers.length)
        : this.roundRobin++ % this.workers.length;
      this.handOver(socket, listener, index, head);
    };
    socket.on('data', onData);
  }

  /**
   * Sends the socket's handle with the bytes read from it. Reading stops first, for good:
   * once the handle is sent, whatever this process still read from it would be thrown away
   * (Node keeps the primary's handle open until the worker acknowledges it), so from the
   * first byte after `head` on, only the worker reads the socket.
   */
  private handOver(socket: net.Socket, listener: number, index: number, head: Buffer): void {
    const child = this.workers[index];
    if (!child || !child.connected) {
      socket.destroy();
      return;
    }
    stopReading(socket);
    // Anything the stream had buffered but not yet emitted belongs to the head too.
    for (let more = socket.read() as Buffer | null; more !== null; more = socket.read() as Buffer | null) head = Buffer.concat([head, more]);
    child.send({ type: 'socket', listener, head } satisfies PrimaryToWorker, socket, (err) => {
      if (err) socket.destroy();
    });
  }
}
