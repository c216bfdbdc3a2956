import { EventEmitter } from 'node:events';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import {
  ConnectReturnCode, parseSharedFilter, ReasonCode, topicNameError, utf8StringError,
  type ConnectPacket, type Properties, type PublishPacket, type QoS, type WillMessage,
} from '../protocol/index.js';
import { anonymousPolicy } from '../security/listener-policy.js';
import { MemoryStore } from '../store/memory.js';
import type { BrokerStore, RecoveredSession, SessionRecord, SubscriptionRecord } from '../store/store.js';
import { Acceptor, proxyStage, unixPeer } from '../transport/listener.js';
import { endpointName, type Endpoint } from '../transport/server.js';
import { PlainTransport } from '../transport/tcp.js';
import { TlsTransport } from '../transport/tls.js';
import { WebSocketTransport } from '../transport/websocket.js';
import { AddressSet } from '../security/guard/addresses.js';
import { Connection, type ListenerInfo, type PeerInfo } from './connection.js';
import { Delivery } from './delivery.js';
import { BANNED, SERVER_BUSY, composeHooks, type AuthenticateRequest, type AuthenticateResult, type BrokerHooks, type ClientInfo, type HandshakeFailure, type PublishAllowance, type PublishRequest } from './hooks.js';
import { Housekeeper } from './housekeeper.js';
import { MemoryWatch, OVERLOAD_OUTBOUND_LIMIT, type MemoryReading } from './overload.js';
import { SessionCaps, type SessionOwner } from './session-caps.js';
import { silentLogger, type Logger } from './logger.js';
import { expiryDeadline, heldSize, isExpired, type Message } from './message.js';
import {
  DEFAULT_CAPABILITIES, DEFAULT_LIMITS, type BrokerCapabilities, type BrokerLimits, type BrokerOptions, type ListenerOptions, type TlsListenerOptions,
  type WebSocketOptions,
} from './options.js';
import type { AuthMethod } from './enhanced-auth.js';
import { RetainedMessages } from './retained.js';
import type { ClientIdAssigner, ConnectionRouting, PeerRouting, SessionOwnership, SharedGroupFilter, SysAggregation, SysReport } from './peers.js';
import { asPublished, Router } from './router.js';
import { NEVER_EXPIRES, Session } from './session.js';
import { BrokerStats } from './stats.js';
import { sysTopics, type SysSnapshot } from './sys.js';
import { VERSION } from './version.js';

export interface BrokerEvents {
  clientConnected: [client: ClientInfo];
  clientDisconnected: [client: ClientInfo, reason: string];
  /** A connection closed for a protocol violation; `client` is undefined before CONNECT was accepted. */
  clientError: [client: ClientInfo | undefined, error: Error];
  subscribe: [client: ClientInfo, subscriptions: Array<{ filter: string; qos: QoS }>];
  unsubscribe: [client: ClientInfo, filters: string[]];
  /**
   * Every message routed from a client (wills included) or from `broker.publish()` (`client` undefined);
   * the broker's own `$SYS` updates come as `sys` instead.
   */
  publish: [message: PublishRequest, client: ClientInfo | undefined];
  /** Each `$SYS/broker/...` update the broker publishes (every `sysInterval` seconds). */
  sys: [message: PublishRequest];
  /** Memory went past the high-water mark (true) or back below the low-water mark (false); `used` in bytes. */
  overload: [overloaded: boolean, used: number];
  /** A stored session was dropped to make room under a session cap. */
  sessionDropped: [clientId: string, reason: string, owner: SessionOwner];
  /** A client was refused because a session cap was reached and no offline session could make room. */
  sessionRefused: [clientId: string, owner: SessionOwner];
}

export interface ListenerAddress {
  name: string;
  /** The bound address; for a Unix domain socket listener, its path (and `port` 0). */
  host: string;
  port: number;
  /** A Unix domain socket listener's path. */
  path?: string;
}

interface RunningListener {
  info: ListenerInfo;
  acceptor: Acceptor;
  address: ListenerAddress;
}

/** A listener as planned: where, which transport, and what the broker tells hooks about it. */
interface ListenerPlan {
  opts: { endpoint: Endpoint; tls?: TlsListenerOptions; websocket?: WebSocketOptions; proxyProtocol?: boolean; trustedProxies?: string[] };
  info: ListenerInfo;
  /** Built at `listen`, in every process (a multi-core worker binds nothing but runs the transports). */
  transport?: PlainTransport | TlsTransport | WebSocketTransport;
  /** A connected socket's way in: the PROXY stage if any, then the transport. */
  admit?: (socket: net.Socket) => void;
}

/** The MQTT broker: sessions, routing, retained messages, wills and $SYS, over any stream transport. */
export class Broker extends EventEmitter<BrokerEvents> {
  readonly limits: BrokerLimits;
  readonly hooks: BrokerHooks;
  readonly unauthorizedPublish: 'acknowledge' | 'disconnect';
  readonly store: BrokerStore;
  readonly logger: Logger;
  readonly stats = new BrokerStats();
  readonly delivery: Delivery;
  readonly router: Router;
  readonly retained: RetainedMessages;
  readonly sessions = new Map<string, Session>();
  /** Security data kept in the store (bans, users, roles...): kind → key → value, recovered at startup. */
  readonly records = new Map<string, Map<string, unknown>>();
  readonly connections = new Set<Connection>();
  readonly capabilities: BrokerCapabilities;
  readonly authMethods: ReadonlyMap<string, AuthMethod>;
  /** Offline sessions with an expiry or a delayed will to watch. */
  private readonly expiring = new Set<Session>();
  readonly version = VERSION;
  /** Wall clock (ms) as of the last chunk received or sweep: cheap enough to read per packet. */
  clock = Date.now();
  /** Overload protection: whether memory is past the high-water mark. */
  readonly memory: MemoryWatch;
  /** Unsent bytes past which a client is a slow consumer: limits.maxOutboundBuffer, less while overloaded. */
  outboundLimit: number;
  readonly sessionCaps: SessionCaps;

  private readonly housekeeper: Housekeeper;
  private readonly listenerOptions: ListenerOptions[];
  private readonly sysInterval: number;
  private running: RunningListener[] = [];
  private sysTimer: NodeJS.Timeout | undefined;
  private readonly bindListeners: boolean;
  private readonly peers: PeerRouting | undefined;
  /** Cluster mode: claims a session before a CONNECT takes it. */
  readonly sessionOwnership: SessionOwnership | undefined;
  private readonly connectionRouting: ConnectionRouting | undefined;
  private readonly sysAggregation: SysAggregation | undefined;
  readonly assignClientId: ClientIdAssigner | undefined;
  private planned: ListenerPlan[] = [];
  /** Open connections of each listener with its own `maxConnections`. */
  private readonly openByListener = new Map<string, number>();
  /**
   * Sockets accepted here that are not (yet) connections of this broker: in a PROXY header, TLS handshake or HTTP
   * upgrade, waited on for a CONNECT, or relayed to another worker (multi-core mode).
   */
  private readonly handshaking = new Set<net.Socket>();
  private readingHeld = false;
  private toFlush: Connection[] = [];
  private flushScheduled = false;
  private started = false;
  private closing = false;
  /** True while the broker routes its own $SYS updates: they are `sys` events, not `publish` ones. */
  private publishingSys = false;
  /** Connections accepted while the state is being recovered, served once it is. */
  private early: Array<() => void> | undefined = [];
  /** When each connection's CONNECT was accepted (epoch ms), for the admin API's client listing. */
  private readonly connectedAt = new WeakMap<Connection, number>();

  constructor(options: BrokerOptions = {}) {
    super();
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.capabilities = { ...DEFAULT_CAPABILITIES, ...options.capabilities };
    this.authMethods = new Map(Object.entries(options.authMethods ?? {}));
    const hookList = options.hooks === undefined ? [] : Array.isArray(options.hooks) ? options.hooks : [options.hooks];
    this.hooks = hookList.length === 0 ? {} : composeHooks(hookList);
    this.unauthorizedPublish = options.unauthorizedPublish ?? 'acknowledge';
    this.store = options.store ?? new MemoryStore();
    this.logger = options.logger ?? silentLogger;
    this.listenerOptions = options.listeners ?? [{ host: '127.0.0.1', port: 1883 }];
    this.sysInterval = options.sysInterval ?? 10;
    this.outboundLimit = this.limits.maxOutboundBuffer;
    this.memory = new MemoryWatch(this.limits, (overloaded, reading) => this.overloadChanged(overloaded, reading));
    this.sessionCaps = new SessionCaps(this.limits);
    this.delivery = new Delivery(this.limits, this.store, this.stats, this.logger, this.hooks, this.memory);
    this.bindListeners = options.bindListeners ?? true;
    this.peers = options.peers;
    this.sessionOwnership = options.sessionOwnership;
    this.connectionRouting = options.connectionRouting;
    this.sysAggregation = options.sysAggregation;
    this.assignClientId = options.assignClientId;
    this.router = new Router(this.delivery, this.hooks, this.peers);
    this.retained = new RetainedMessages(this.store);
    this.housekeeper = new Housekeeper(this, this.connections, this.limits);
  }

  /**
   * Replaces the limits (keys left out go back to their defaults). Each is read where it applies, so new
   * values hold for new connections and messages; a connected MQTT 5 client keeps the maximum packet size
   * its CONNACK announced.
   */
  updateLimits(limits: Partial<BrokerLimits>): void {
    Object.assign(this.limits, DEFAULT_LIMITS, limits);
    this.memory.sample();
    this.setOutboundLimit();
  }

  private setOutboundLimit(): void {
    const max = this.limits.maxOutboundBuffer;
    this.outboundLimit = this.memory.overloaded ? Math.min(max, OVERLOAD_OUTBOUND_LIMIT) : max;
  }

  /** Past the high-water mark: new clients refused, QoS 0 shed to clients more than 64 KiB behind; undone below the low one. */
  private overloadChanged(overloaded: boolean, reading: MemoryReading): void {
    this.setOutboundLimit();
    const fields = { usedBytes: reading.used, highWater: this.limits.memoryHighWater, heapUsed: reading.heapUsed };
    if (overloaded) {
      this.stats.overloads++;
      this.logger.warn(fields, 'memory past the high-water mark: refusing new connections and shedding QoS 0 to slow consumers');
    } else {
      this.logger.info(fields, 'memory back below the low-water mark: accepting connections again');
    }
    this.emitSafely('overload', overloaded, reading.used);
  }

  /** Events raised from timers and socket handlers: a throwing listener is logged, never fatal. */
  private emitSafely<K extends keyof BrokerEvents>(event: K, ...args: BrokerEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: BrokerEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.logger.error({ err: (err as Error).message, event }, 'an event listener threw');
    }
  }

  /**
   * New TLS certificate, key and CA for the listener at `index` of the options (a reload): handshakes from now on
   * use them, connections already open are untouched. False if that listener is not a running TLS one.
   */
  updateTls(index: number, tls: TlsListenerOptions): boolean {
    const plan = this.planned[index];
    if (!plan?.transport || plan.opts.tls === undefined || plan.transport instanceof PlainTransport) return false;
    plan.transport.updateCredentials(tls);
    plan.opts.tls = { ...plan.opts.tls, ...tls };
    return true;
  }

  /**
   * The keys (48 bytes) that seal TLS session tickets on every TLS and wss listener: replaced on rotation, and the
   * same in every multi-core worker, so a client resumes whichever worker its next connection reaches.
   */
  setTicketKeys(keys: Buffer): void {
    for (const plan of this.planned) if (plan.transport && !(plan.transport instanceof PlainTransport)) plan.transport.setTicketKeys(keys);
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** Serving clients: every listener bound, the stored state recovered, not closing (the admin listener's /readyz). */
  get isReady(): boolean {
    return this.started && this.early === undefined && !this.closing;
  }

  /** Where each listener is bound (useful with port 0). */
  get addresses(): ListenerAddress[] {
    return this.running.map((l) => l.address);
  }

  /**
   * Opens every listener, then recovers stored state: a port that cannot be bound fails the start before
   * the store is touched. Connections that arrive meanwhile are served once the state is recovered.
   * Rejects (and listens nowhere) if a listener or the store cannot start.
   */
  async listen(): Promise<ListenerAddress[]> {
    if (this.started) throw new Error('broker already started');
    this.started = true;
    const plans = this.listenerOptions.map((opts) => this.planListener(opts));
    this.planned = plans;
    plans.forEach((plan, index) => {
      plan.transport = this.transportFor(plan, index);
      plan.admit = this.admission(plan, plan.transport);
    });
    try {
      for (const plan of this.bindListeners ? plans : []) {
        const acceptor = new Acceptor(plan.opts.endpoint, plan.admit!);
        const bound = await acceptor.listen(plan.info.name);
        if (this.closing) {
          await acceptor.close();
          throw new Error('the broker was closed while starting');
        }
        const { endpoint } = plan.opts;
        const address: ListenerAddress = 'path' in endpoint
          ? { name: plan.info.name, host: endpoint.path, port: 0, path: endpoint.path }
          : { name: plan.info.name, host: bound.address, port: bound.port };
        this.running.push({ info: plan.info, acceptor, address });
      }
      await this.recover();
      if (this.closing) {
        await this.store.close(); // opened after close() closed it
        throw new Error('the broker was closed while starting');
      }
      await this.peers?.join?.();
    } catch (err) {
      await this.close();
      throw err;
    }
    this.housekeeper.start();
    this.memory.start();
    if (this.sysInterval > 0) {
      this.publishSys();
      this.sysTimer = setInterval(() => this.publishSys(), this.sysInterval * 1000).unref();
    }
    this.serveEarly();
    for (const { info, address } of this.running) {
      const opts = this.planned.find((p) => p.info === info)?.opts;
      const websocket = opts?.websocket === undefined ? {} : { websocket: opts.websocket.path ?? '/mqtt' };
      const where = address.path !== undefined ? { path: address.path } : { host: address.host, port: address.port };
      this.logger.info({ listener: info.name, ...where, tls: opts?.tls !== undefined, ...websocket, ...(opts?.proxyProtocol && { proxyProtocol: true }), anonymous: info.allowAnonymous }, 'listening');
    }
    return this.addresses;
  }

  /**
   * The listener's transport. What it hands on is served here, unless multi-core mode's connection routing sends it
   * to the worker that owns its Client Identifier (a TLS or WebSocket connection cannot be handed over as a socket).
   */
  private transportFor(plan: ListenerPlan, index: number): PlainTransport | TlsTransport | WebSocketTransport {
    const { opts, info } = plan;
    const handshakeFailed = (err: Error, remoteAddress: string | undefined): void =>
      this.handshakeFailed({ listener: info.name, remoteAddress, reason: err.message });
    const serve = (stream: Duplex, peer: PeerInfo, socket: net.Socket): void => {
      // Until served here, the socket stays counted: a client waited on for its CONNECT, or relayed to another
      // worker for as long as it is open, holds a socket of this process.
      const here = (): void => {
        this.handshaking.delete(socket);
        this.acceptFrom(index, stream, peer);
      };
      if (this.connectionRouting) this.connectionRouting.route(stream, peer, index, here);
      else here();
    };
    if (opts.websocket !== undefined) {
      return new WebSocketTransport(
        {
          websocket: opts.websocket, maxPayload: () => this.limits.maxPacketSize, handshakeTimeoutMs: () => this.limits.connectTimeout * 1000,
          ...(opts.tls && { tls: opts.tls }),
          ...(opts.trustedProxies && { trustedProxy: trustedBy(opts.trustedProxies) }), ...(opts.proxyProtocol && { proxied: true }),
        },
        serve, handshakeFailed,
      );
    }
    if (opts.tls !== undefined) return new TlsTransport(opts.tls, () => this.limits.connectTimeout * 1000, serve, handshakeFailed);
    // Plain TCP reaches a multi-core worker already routed by the primary, unless a PROXY header came first.
    return new PlainTransport(opts.proxyProtocol ? serve : (socket, peer) => this.acceptFrom(index, socket, peer));
  }

  /**
   * A connected socket's way in: the PROXY stage (behind a load balancer), then the transport. Sockets still in a
   * handshake (PROXY header, TLS, HTTP upgrade) count against the socket limit too: a flood of connections that
   * never finish one cannot use up the process's file descriptors.
   */
  private admission(plan: ListenerPlan, transport: PlainTransport | TlsTransport | WebSocketTransport): (socket: net.Socket) => void {
    const trusted = plan.opts.trustedProxies && trustedBy(plan.opts.trustedProxies);
    const { endpoint } = plan.opts;
    // A Unix domain socket's clients have no address: they are named by its path.
    const local = 'path' in endpoint ? unixPeer(endpoint.path) : undefined;
    const next = !plan.opts.proxyProtocol ? (socket: net.Socket): void => transport.adopt(socket, local) : proxyStage({
      ...(trusted && { trusted }),
      timeoutMs: () => this.limits.connectTimeout * 1000,
      refused: (socket, why) => this.logger.debug({ listener: plan.info.name, remoteAddress: socket.remoteAddress, reason: why }, 'connection refused: PROXY protocol'),
    }, (socket, origin) => transport.adopt(socket, origin));
    // Plain TCP without a PROXY stage reaches `accept` at once, which counts it there.
    if (transport instanceof PlainTransport && !plan.opts.proxyProtocol) return next;
    return (socket) => {
      if (this.handshaking.size + this.connections.size >= this.socketCap) {
        socket.destroy();
        return;
      }
      this.handshaking.add(socket);
      socket.once('close', () => this.handshaking.delete(socket));
      next(socket);
    };
  }

  /**
   * Serves a stream of the listener at `index` of the options (now, or once the state is recovered) whose transport
   * ran here or in another process (multi-core mode relays TLS and WebSocket clients to the worker that owns them).
   * The stream may be paused with bytes put back: it is resumed once the connection reads it.
   */
  acceptFrom(index: number, stream: Duplex, peer: PeerInfo): void {
    const info = this.planned[index]?.info;
    if (!info) {
      stream.destroy();
      return;
    }
    this.serveWhenRecovered(stream, () => {
      // Data flows from the next tick: the connection's reader is attached by then (and may pause it again).
      stream.resume();
      this.accept(stream, info, peer);
    });
  }

  /**
   * Serves a socket now, or once the state is recovered. A waiting socket that errors (a reset) is destroyed
   * and dropped; beyond the socket limit, new ones are closed at once, as `accept` would.
   */
  private serveWhenRecovered(socket: Duplex, accept: () => void): void {
    if (!this.early) return accept();
    if (this.early.length >= this.socketCap) {
      socket.destroy();
      return;
    }
    const dropped = (): void => {
      socket.destroy();
    };
    socket.on('error', dropped);
    this.early.push(() => {
      socket.off('error', dropped);
      if (!socket.destroyed) accept();
    });
  }

  private serveEarly(): void {
    const waiting = this.early ?? [];
    this.early = undefined;
    for (const accept of waiting) accept();
  }

  /** Sockets still before CONNECT count too: beyond the client limit plus a margin (for CONNACK 3 answers), new sockets are closed at once. */
  private get socketCap(): number {
    return this.limits.maxConnections + Math.max(16, Math.ceil(this.limits.maxConnections / 10));
  }

  /** A hook that throws refuses the connection (fail closed) and is logged. */
  private acceptConnection(peer: PeerInfo, listener: string, stream: Duplex): boolean {
    try {
      return this.hooks.acceptConnection!(peer, listener, stream);
    } catch (err) {
      this.logger.error({ err: (err as Error).message, remoteAddress: peer.remoteAddress }, 'acceptConnection hook threw');
      return false;
    }
  }

  private planListener(opts: ListenerOptions): ListenerPlan {
    const endpoint: Endpoint = opts.path !== undefined ? { path: opts.path } : { host: opts.host ?? '127.0.0.1', port: opts.port ?? 1883 };
    const name = opts.name ?? endpointName(endpoint);
    // A Unix domain socket is reached from this machine only, as a loopback address is.
    const host = 'path' in endpoint ? '127.0.0.1' : endpoint.host;
    const policy = anonymousPolicy({
      name, host, allowAnonymous: opts.allowAnonymous, authenticationConfigured: this.hooks.authenticate !== undefined,
    });
    if (policy.warning) this.logger.warn({ listener: name }, policy.warning);
    if (opts.proxyProtocol && opts.trustedProxies === undefined) {
      this.logger.warn({ listener: name }, `listener ${name} reads PROXY headers from anyone who reaches it: a client that can connect directly can claim any address; set trusted_proxies`);
    }
    if (opts.websocket && policy.allowAnonymous && opts.websocket.allowedOrigins === undefined) {
      // A page on any web site can make a visitor's browser open ws://127.0.0.1:...: it would be let in.
      this.logger.warn({ listener: name }, `listener ${name} takes anonymous WebSocket clients from any web page a browser on this machine visits; set websocket.allowed_origins`);
    }
    return {
      opts: {
        endpoint, ...(opts.tls && { tls: opts.tls }), ...(opts.websocket && { websocket: opts.websocket }),
        ...(opts.proxyProtocol && { proxyProtocol: true }), ...(opts.trustedProxies && { trustedProxies: opts.trustedProxies }),
      },
      info: { name, allowAnonymous: policy.allowAnonymous, ...(opts.maxConnections !== undefined && { maxConnections: opts.maxConnections }) },
    };
  }

  /**
   * Serves one client over any duplex stream (a TCP socket, a WebSocket stream,
   * a test pipe). The stream belongs to the broker from here on.
   */
  accept(stream: Duplex, listener: ListenerInfo, peer: PeerInfo): void {
    if (this.connections.size >= this.socketCap) {
      stream.destroy();
      return;
    }
    if (listener.maxConnections !== undefined && !this.listenerHasRoom(listener, stream)) {
      stream.destroy();
      return;
    }
    if (this.hooks.acceptConnection && !this.acceptConnection(peer, listener.name, stream)) {
      stream.destroy();
      return;
    }
    const conn = new Connection(this, stream, listener, peer);
    this.connections.add(conn);
    if (this.readingHeld) conn.holdForPeers(true);
    this.stats.totalConnections++;
    if (this.closing) conn.close('server shutting down', { publishWill: false });
  }

  /** Counts a connection against its listener's own cap, until its stream closes; false at the cap. */
  private listenerHasRoom(listener: ListenerInfo, stream: Duplex): boolean {
    const open = this.openByListener.get(listener.name) ?? 0;
    if (open >= listener.maxConnections!) {
      this.logger.debug({ listener: listener.name, open }, 'connection closed: the listener\'s max_connections reached');
      return false;
    }
    this.openByListener.set(listener.name, open + 1);
    stream.once('close', () => this.openByListener.set(listener.name, (this.openByListener.get(listener.name) ?? 1) - 1));
    return true;
  }

  /**
   * Serves a socket accepted elsewhere for the listener at `index` of the options (with `bindListeners: false`;
   * multi-core mode passes sockets between processes): through its PROXY stage and transport, as if accepted here.
   */
  acceptOn(index: number, socket: net.Socket): void {
    const plan = this.planned[index];
    if (!plan?.admit) {
      socket.destroy();
      this.logger.error({ listener: index }, 'a socket was handed over for a listener this broker does not have');
      return;
    }
    plan.admit(socket);
  }

  /** Stops listening, closes every connection, and makes the state durable. */
  private handshakeFailed(event: HandshakeFailure): void {
    this.stats.tlsHandshakesFailed++;
    this.logger.debug(event, 'TLS handshake failed');
    try {
      this.hooks.handshakeFailed?.(event);
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'handshakeFailed hook threw');
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // Connections that came while the state was being recovered are closed with the rest.
    this.serveEarly();
    const stopping = [...this.running.map((l) => l.acceptor.close()), ...this.planned.map((p) => p.transport?.close())];
    // MQTT 5 clients are told why [MQTT-3.14.2-1]: 0x8B, Server shutting down.
    for (const conn of this.connections) conn.disconnect(ReasonCode.ServerShuttingDown, 'server shutting down', { publishWill: false });
    const gone = [...this.connections].map((conn) => new Promise<void>((resolve) => {
      if (conn.socket.destroyed && conn.state === 'closed') resolve();
      else conn.socket.once('close', () => resolve());
    }));
    for (const conn of this.connections) conn.destroy();
    this.housekeeper.stop();
    this.memory.stop();
    if (this.sysTimer) clearInterval(this.sysTimer);
    await Promise.all([...stopping, ...gone]);
    await this.store.close();
    this.running = [];
    this.logger.info({}, 'broker closed');
  }

  // ---- write batching -------------------------------------------------------

  /** Connections written to in this turn are flushed together once it ends. */
  flushLater(conn: Connection): void {
    this.toFlush.push(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flushAll);
    }
  }

  /**
   * A sampled publish (handlers/publish.ts) is routed: its time is taken once this turn's batched writes, queued
   * before it with process.nextTick, have gone to the sockets.
   */
  timeDelivery(sampledAt: number): void {
    process.nextTick(this.observeDelivery, sampledAt);
  }

  private readonly observeDelivery = (sampledAt: number): void => this.stats.deliveryLatency.observeSince(sampledAt);

  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    const list = this.toFlush;
    this.toFlush = [];
    for (const conn of list) conn.flush();
  };

  // ---- connection lifecycle (called by Connection and handlers) ---------------

  /** What hooks and authentication methods learn about a connecting client. */
  authenticationRequest(conn: Connection, packet: ConnectPacket): AuthenticateRequest {
    return {
      clientId: packet.clientId,
      username: packet.username,
      password: packet.password,
      protocolVersion: packet.protocolVersion,
      remoteAddress: conn.peer.remoteAddress,
      remotePort: conn.peer.remotePort,
      listener: conn.listener.name,
      allowAnonymous: conn.listener.allowAnonymous,
      openedAt: conn.openedAt,
      ...(conn.peer.certificate && { certificate: conn.peer.certificate }),
      ...(conn.peer.pskIdentity !== undefined && { pskIdentity: conn.peer.pskIdentity }),
    };
  }

  reauthenticationRequest(conn: Connection): AuthenticateRequest {
    const client = conn.client!;
    return {
      clientId: client.id,
      // Re-authentication is for the user the connection already is.
      username: client.identity ? client.identity.username : client.username,
      password: undefined,
      protocolVersion: client.protocolVersion,
      remoteAddress: client.remoteAddress,
      remotePort: client.remotePort,
      listener: client.listener,
      allowAnonymous: conn.listener.allowAnonymous,
    };
  }

  authenticate(conn: Connection, packet: ConnectPacket): number | Promise<number> {
    const hook = this.hooks.authenticate;
    if (!hook) return this.anonymousVerdict(conn);
    let result: AuthenticateResult | Promise<AuthenticateResult>;
    try {
      result = hook(this.authenticationRequest(conn, packet));
    } catch (err) {
      return this.authenticationFailed(err, conn);
    }
    if (!(result instanceof Promise)) return this.authVerdict(result, conn);
    return result.then((r) => this.authVerdict(r, conn), (err: unknown) => this.authenticationFailed(err, conn));
  }

  /** The screenConnect hooks' verdict; one that throws refuses the client (fail closed) and is logged. */
  screenConnect(conn: Connection, packet: ConnectPacket): 'banned' | 'failed' | undefined {
    try {
      return this.hooks.screenConnect!(this.authenticationRequest(conn, packet));
    } catch (err) {
      this.logger.error({ err: (err as Error).message, remoteAddress: conn.peer.remoteAddress }, 'screenConnect hook threw');
      return 'failed';
    }
  }

  /** Fail closed: an authenticator that breaks lets nobody in (CONNACK 3, server unavailable). */
  private authenticationFailed(err: unknown, conn: Connection): number {
    this.logger.error({ err, remoteAddress: conn.peer.remoteAddress }, 'authenticate hook failed');
    return ConnectReturnCode.ServerUnavailable;
  }

  private authVerdict(result: AuthenticateResult, conn: Connection): number {
    if (result === undefined) return this.anonymousVerdict(conn);
    if (typeof result === 'boolean') return result ? ConnectReturnCode.Accepted : ConnectReturnCode.BadUsernameOrPassword;
    if (result.ok) {
      conn.identity = result.identity;
      return ConnectReturnCode.Accepted;
    }
    if (result.reason === 'notAuthorized') return ConnectReturnCode.NotAuthorized;
    if (result.reason === 'banned') return BANNED;
    if (result.reason === 'busy') return SERVER_BUSY;
    if (result.reason === 'unavailable') return ConnectReturnCode.ServerUnavailable; // MQTT 5: 0x88
    return ConnectReturnCode.BadUsernameOrPassword;
  }

  private anonymousVerdict(conn: Connection): number {
    if (!conn.listener.allowAnonymous) return ConnectReturnCode.NotAuthorized;
    conn.anonymous = true;
    return ConnectReturnCode.Accepted;
  }

  /**
   * Room for the stored session a connecting client is about to leave behind, under the session caps: offline
   * sessions of its owner (then of anyone, for the overall cap) are dropped to make it; false if none can be.
   */
  roomForSession(conn: Connection, clientId: string, clean: boolean): boolean {
    const existing = this.sessions.get(clientId);
    if (existing?.persistent && !clean) return true; // resumed, not a new one
    const owner = ownerOf(conn);
    const room = this.sessionCaps.makeRoom(owner, existing, (victim, why) => this.dropSession(victim, why));
    if (!room) {
      this.stats.sessionsRefused++;
      this.logger.warn({ clientId, ...owner }, 'connection refused: stored session caps reached and every stored session is connected');
      this.emitSafely('sessionRefused', clientId, owner);
    }
    return room;
  }

  private dropSession(victim: Session, why: string): void {
    const owner = victim.owner ?? {};
    this.stats.sessionsDropped++;
    this.logger.info({ clientId: victim.clientId, ...owner, reason: why }, 'stored session dropped to make room');
    this.endSession(victim);
    this.emitSafely('sessionDropped', victim.clientId, why, owner);
  }

  /** The client's publishing allowance from the hooks; a hook that throws leaves the client unlimited (and is logged). */
  publishAllowance(client: ClientInfo): PublishAllowance | undefined {
    const hook = this.hooks.publishAllowance;
    if (!hook) return undefined;
    try {
      return hook(client);
    } catch (err) {
      this.logger.error({ err: (err as Error).message, clientId: client.id }, 'publishAllowance hook threw');
      return undefined;
    }
  }

  /**
   * Binds a connection to its session, taking over from an older connection
   * [MQTT-3.1.4-2] (told so with DISCONNECT 0x8E in MQTT 5 [MQTT-3.1.4-3]).
   * `expiryInterval`: seconds the session outlives the connection (0 = ends with it).
   */
  attachSession(conn: Connection, clientId: string, clean: boolean, expiryInterval: number): { session: Session; present: boolean } {
    const previous = this.sessions.get(clientId)?.connection;
    if (previous) {
      this.logger.info({ clientId }, 'session taken over by a new connection');
      previous.disconnect(ReasonCode.SessionTakenOver, 'session taken over');
    }
    let session = this.sessions.get(clientId);
    let present = false;
    if (clean || !session) {
      // A clean session discards any previous one [MQTT-3.1.2-6], [MQTT-3.1.2-4].
      if (session) this.endSession(session);
      session = new Session(clientId, expiryInterval > 0);
      this.sessions.set(clientId, session);
    } else {
      present = true;
      // Back before the Will Delay Interval passed: no will [MQTT-3.1.3-9].
      session.pendingWill = undefined;
    }
    session.expiryInterval = expiryInterval;
    session.expiresAt = undefined;
    session.leftAt = undefined;
    this.expiring.delete(session);
    this.sessionCaps.cameBack(session);
    const owner = ownerOf(conn);
    if (session.owner?.username !== owner.username || session.owner?.remoteAddress !== owner.remoteAddress) this.sessionCaps.track(session, owner);
    this.saveSessionRecord(session);
    session.connection = conn;
    session.client = conn.client;
    conn.session = session;
    return { session, present };
  }

  /** Called once CONNACK and any resent messages are written. */
  clientConnected(conn: Connection): void {
    const stats = this.stats;
    stats.connectedClients++;
    stats.connectsAccepted++;
    if (stats.connectedClients > stats.maxConnectedClients) stats.maxConnectedClients = stats.connectedClients;
    const client = conn.client!;
    this.connectedAt.set(conn, Date.now());
    this.logger.info(
      { clientId: client.id, username: client.username, remoteAddress: client.remoteAddress, listener: client.listener, clean: client.clean },
      'client connected',
    );
    this.emit('clientConnected', client);
  }

  connectionClosed(conn: Connection, reason: string, wasConnected: boolean, graceful: boolean, publishWill: boolean): void {
    if (!wasConnected) return;
    this.stats.connectedClients--;
    const session = conn.session!;
    const client = conn.client!;
    let will = !graceful && publishWill ? conn.will : undefined;
    const hadWill = conn.will !== undefined;
    conn.will = undefined;
    const now = Date.now();
    if (session.connection === conn) {
      if (hadWill) this.sessionOwnership?.willGone?.(client.id);
      session.connection = undefined;
      const delay = will?.properties?.willDelayInterval ?? 0;
      if (will && delay > 0 && session.expiryInterval > 0) {
        // Published when the delay passes or the session ends, whichever is first [MQTT-3.1.3-9].
        session.pendingWill = { will, client, publishAt: now + delay * 1000 };
        this.expiring.add(session);
        will = undefined;
      }
      if (session.expiryInterval === 0) this.endSession(session);
      else {
        session.leftAt = now;
        this.sessionCaps.wentOffline(session);
        if (session.expiryInterval !== NEVER_EXPIRES) {
          session.expiresAt = now + session.expiryInterval * 1000;
          this.expiring.add(session);
        }
        this.saveSessionRecord(session); // when it left, for the caps after a restart (and when it expires)
      }
    }
    if (will) this.publishWillSafely(client, will);
    this.logger.info({ clientId: client.id, reason }, 'client disconnected');
    this.emit('clientDisconnected', client, reason);
  }

  connectionGone(conn: Connection): void {
    this.connections.delete(conn);
  }

  /** Called by the housekeeper: delayed wills and expired sessions. */
  sweepSessions(now: number): void {
    for (const session of this.expiring) {
      if (session.connection) {
        this.expiring.delete(session);
        continue;
      }
      const pending = session.pendingWill;
      if (pending && now >= pending.publishAt) {
        session.pendingWill = undefined;
        this.publishWillSafely(pending.client, pending.will);
      }
      if (session.expiresAt !== undefined && now >= session.expiresAt) {
        this.logger.info({ clientId: session.clientId }, 'session expired');
        this.endSession(session);
      }
      if (!session.pendingWill && session.expiresAt === undefined) this.expiring.delete(session);
    }
  }

  /** The session ends: a will still waiting is published now [MQTT-3.1.3-9], then its state goes. */
  private endSession(session: Session): void {
    const pending = session.pendingWill;
    session.pendingWill = undefined;
    session.expiresAt = undefined;
    this.expiring.delete(session);
    if (pending) this.publishWillSafely(pending.client, pending.will);
    this.destroySession(session);
  }

  private destroySession(session: Session): void {
    for (const filter of session.subscriptions.keys()) this.router.unsubscribe(session, filter, shareOf(filter));
    session.subscriptions.clear();
    // Messages a shared subscription gave this session and it never acknowledged go to another member:
    // queued ones and unacknowledged QoS 1 ones; a QoS 2 message already sent goes nowhere else [MQTT-4.8.2-5].
    const orphans: Array<{ message: Message; share: string }> = [];
    for (const entry of session.inflight.values()) {
      if (entry.share && entry.qos === 1) orphans.push({ message: entry.message, share: entry.share });
    }
    for (const entry of session.queue) if (entry.share) orphans.push({ message: entry.message, share: entry.share });
    session.queue.clear();
    session.queuedBytes = 0;
    session.clearInflight();
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    this.sessionCaps.forget(session);
    if (session.persistent) this.store.deleteSession(session.clientId);
    for (const { message, share } of orphans) {
      const group = this.router.group(share);
      try {
        if (!group || !this.router.deliverShared(group, asPublished(message), session)) this.stats.drop('noSubscriber');
      } catch (err) {
        // Runs from socket events and timers: a failing hook must not take the process down.
        this.logger.error({ err, clientId: session.clientId }, 'moving a shared subscription message failed');
      }
    }
  }

  // ---- subscriptions ----------------------------------------------------------

  /** Adds or replaces a subscription; returns true if the filter was new for this session. */
  /** `persist: false` when the subscription comes from the store (restoring it must not write it again). */
  subscribe(session: Session, record: SubscriptionRecord, persist = true): boolean {
    const isNew = !session.subscriptions.has(record.filter);
    session.subscriptions.set(record.filter, record);
    const entry = {
      session,
      qos: record.qos,
      noLocal: record.noLocal === true,
      retainAsPublished: record.retainAsPublished === true,
      subscriptionId: record.subscriptionId,
    };
    this.router.subscribe(session, record.filter, entry, shareOf(record.filter));
    if (persist && session.persistent) this.store.putSubscription(session.clientId, record);
    return isNew;
  }

  /** Returns false if the session had no such subscription. */
  unsubscribe(session: Session, filter: string): boolean {
    if (!session.subscriptions.delete(filter)) return false;
    this.router.unsubscribe(session, filter, shareOf(filter));
    if (session.persistent) this.store.deleteSubscription(session.clientId, filter);
    return true;
  }

  /** Retained messages matching a new subscription, sent with the retain flag set [MQTT-3.3.1-8]. */
  sendRetained(session: Session, record: SubscriptionRecord): void {
    const authorize = this.hooks.authorizeDelivery;
    const granted = record.qos;
    const ids = record.subscriptionId === undefined ? undefined : [record.subscriptionId];
    this.retained.match(record.filter, Date.now(), (message) => {
      if (authorize && session.client && !authorize(session.client, message)) return;
      const out = ids ? { ...message, encodedQos0: undefined, properties: { ...message.properties, subscriptionIdentifiers: ids } } : message;
      this.delivery.deliver(session, out, (message.qos < granted ? message.qos : granted) as QoS);
    });
  }

  /** Topic names and filters beyond the configured size limits. */
  topicLimitError(topic: string): string | undefined {
    if (topic.length > this.limits.maxTopicLength || Buffer.byteLength(topic) > this.limits.maxTopicLength) {
      return `topic longer than ${this.limits.maxTopicLength} bytes`;
    }
    let levels = 1;
    for (let i = topic.indexOf('/'); i !== -1; i = topic.indexOf('/', i + 1)) levels++;
    if (levels > this.limits.maxTopicLevels) return `topic has more than ${this.limits.maxTopicLevels} levels`;
    return undefined;
  }

  // ---- publishing -------------------------------------------------------------

  /** Routes a client's PUBLISH; returns how many sessions it went to. */
  publishFromClient(conn: Connection, packet: PublishPacket, properties: Properties | undefined, expiresAt: number | undefined): number {
    return this.route(packet.topic, packet.payload, packet.qos, packet.retain, conn.client, conn.session, properties, expiresAt);
  }

  private publishWillSafely(client: ClientInfo | undefined, will: WillMessage): void {
    try {
      if (client) this.publishWill(client, will);
      else {
        const { willDelayInterval: _delay, ...properties } = will.properties ?? {};
        this.publish({ topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, ...(Object.keys(properties).length > 0 && { properties }) });
      }
    } catch (err) {
      // Runs from socket events and timers: a failing hook must not take the process down.
      this.logger.error({ err, clientId: client?.id }, 'publishing the will failed');
    }
  }

  private publishWill(client: ClientInfo, will: WillMessage): void {
    if (will.topic.charCodeAt(0) === 0x24) return;
    // A will is a publish like any other for payload encryption (src/payload): opened, or refused and not routed.
    const openPayload = this.hooks.openPayload;
    if (openPayload !== undefined) {
      const message = { topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, dup: false, ...(will.properties && { properties: will.properties }) };
      if (openPayload(client, message) !== undefined) return;
      will = { ...will, payload: message.payload };
    }
    const authorize = this.hooks.authorizePublish;
    const verdict = authorize ? authorize(client, will, 'will') : true;
    const publish = (allowed: boolean): void => {
      if (!allowed) return;
      const { willDelayInterval: _delay, ...properties } = will.properties ?? {};
      const expiresAt = expiryDeadline(properties.messageExpiryInterval);
      const forwarded = Object.keys(properties).length > 0 ? properties : undefined;
      this.route(will.topic, will.payload, will.qos, will.retain, client, undefined, forwarded, expiresAt);
    };
    if (typeof verdict === 'boolean') publish(verdict);
    else verdict.then(publish, (err: unknown) => this.logger.error({ err }, 'authorizePublish hook failed for a will'));
  }

  /** Publishes a message from the embedding program, as if from a client that may publish anywhere. */
  publish(message: { topic: string; payload: Buffer | string; qos?: QoS; retain?: boolean; properties?: Properties }): void {
    const problem = topicNameError(message.topic) ?? utf8StringError(message.topic);
    if (problem) throw new TypeError(`invalid topic "${message.topic}": ${problem}`);
    const qos = message.qos ?? 0;
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new TypeError(`invalid QoS ${String(qos)}: expected 0, 1 or 2`);
    const payload = typeof message.payload === 'string' ? Buffer.from(message.payload) : message.payload;
    const expiresAt = expiryDeadline(message.properties?.messageExpiryInterval);
    // A `sys` listener may publish from inside its handler: that message is a `publish` event, not a `sys` one.
    const duringSys = this.publishingSys;
    this.publishingSys = false;
    try {
      this.route(message.topic, payload, qos, message.retain ?? false, undefined, undefined, message.properties, expiresAt);
    } finally {
      this.publishingSys = duringSys;
    }
  }

  private route(
    topic: string, payload: Buffer, qos: QoS, retain: boolean, client: ClientInfo | undefined,
    publisher?: Session, properties?: Properties, expiresAt?: number,
  ): number {
    if (retain) this.retained.update(topic, payload, qos, properties, expiresAt);
    // Subscribers of an established subscription get the retain flag cleared [MQTT-3.3.1-9],
    // unless they asked for Retain As Published [MQTT-3.3.1-12].
    const message: Message = { topic, payload, qos, retain: false, publishedRetain: retain };
    if (properties) message.properties = properties;
    if (expiresAt !== undefined) message.expiresAt = expiresAt;
    const servesGroup = this.peers?.published(message, retain);
    // Peers with subscribers count too: an MQTT 5 publisher hears "no matching subscribers" only if none has any.
    const count = this.router.route(message, publisher, servesGroup) + (this.peers ? this.peers.forwarded : 0);
    if (this.publishingSys ? this.listenerCount('sys') > 0 : this.listenerCount('publish') > 0) {
      const event: PublishRequest = { topic, payload, qos, retain };
      if (properties) event.properties = properties;
      if (this.publishingSys) this.emit('sys', event);
      else this.emit('publish', event, client);
    }
    return count;
  }

  get isReadingHeld(): boolean {
    return this.readingHeld;
  }

  /**
   * Stops (or resumes) reading from every client: what they publish would only pile up
   * for a peer broker that is behind (multi-core mode's backpressure between workers).
   */
  holdReading(held: boolean): void {
    if (held === this.readingHeld) return;
    this.readingHeld = held;
    for (const conn of this.connections) conn.holdForPeers(held);
  }

  /**
   * A message a peer broker routed (multi-core mode), as `route` builds one (RETAIN cleared,
   * `publishedRetain` kept): its retained state, applied here too when `applyRetain` (the peer
   * decides the order of competing retained publishes), and delivery to this broker's subscribers
   * when `deliver`, serving the shared groups `servesGroup` allows.
   */
  routeFromPeer(message: Message, applyRetain: boolean, deliver: boolean, servesGroup: SharedGroupFilter | undefined): void {
    if (applyRetain) this.retained.update(message.topic, message.payload, message.qos, message.properties, message.expiresAt, !this.peers?.sharesRetainedStore);
    if (deliver) this.router.route(message, undefined, servesGroup);
  }

  /**
   * Cluster mode: routes a message from a peer to some of this broker's sessions only (`among`, by Client
   * Identifier): what waited in a dead node's inbox goes to the sessions adopted from it, which had no other copy.
   */
  routeAmong(message: Message, among: (clientId: string) => boolean, servesGroup: SharedGroupFilter): void {
    this.router.route(message, undefined, servesGroup, (session) => among(session.clientId));
  }

  /**
   * Cluster mode: the will of a dead node's client whose session was adopted here waits for its Will Delay Interval
   * as if its connection had closed at `closedAt` (published then, or when the session ends, unless the client comes back).
   * Returns false if there is no such session (publish it now).
   */
  delayWill(clientId: string, will: WillMessage, closedAt: number): boolean {
    const session = this.sessions.get(clientId);
    const delay = will.properties?.willDelayInterval ?? 0;
    if (!session || session.connection || delay === 0 || session.expiryInterval === 0) return false;
    session.pendingWill = { will, client: undefined, publishAt: closedAt + delay * 1000 };
    this.expiring.add(session);
    return true;
  }

  // ---- read-only views and administrative actions (the admin API; the core never imports it) ----------------

  /** Every connected client (CONNECT accepted), as the admin API lists them: read-only figures, no live objects. */
  *connectedClients(): IterableIterator<ConnectedClientView> {
    for (const conn of this.connections) {
      const client = conn.client;
      const session = conn.session;
      if (conn.state !== 'connected' || !client || !session) continue;
      yield {
        id: client.id, username: client.identity?.username ?? client.username, remoteAddress: client.remoteAddress, remotePort: client.remotePort,
        listener: client.listener, protocolVersion: client.protocolVersion, connectedAt: this.connectedAt.get(conn) ?? conn.openedAt,
        keepalive: client.keepalive, clean: client.clean, sessionExpiryInterval: session.expiryInterval,
        traffic: { publishesIn: conn.publishesIn, publishesOut: conn.publishesOut, bytesIn: conn.bytesIn, bytesOut: conn.bytesOut },
      };
    }
  }

  /** One session (a client online or a stored session waiting for it), with its subscriptions and counts; undefined if none. */
  sessionView(clientId: string): SessionView | undefined {
    const session = this.sessions.get(clientId);
    return session && viewOf(session);
  }

  /** Every session held, online and offline. */
  *sessionViews(): IterableIterator<SessionView> {
    for (const session of this.sessions.values()) yield viewOf(session);
  }

  /**
   * Disconnects a connected client by administrative action: an MQTT 5 client is sent DISCONNECT 0x98 first
   * [MQTT-3.14.2-1]; its will is published, as for any disconnection the client did not ask for. False if not connected.
   */
  disconnectClient(
    clientId: string, reason = 'disconnected by an administrator', reasonCode: number = ReasonCode.AdministrativeAction, publishWill = true,
  ): boolean {
    const conn = this.sessions.get(clientId)?.connection;
    if (!conn) return false;
    conn.disconnect(reasonCode, reason, { publishWill });
    return true;
  }

  /**
   * Ends a session, in memory and in the store, as its expiry would (a will still waiting is published): a
   * connected client is disconnected first (0x98). False if there is no such session.
   */
  removeSession(clientId: string): boolean {
    if (!this.sessions.has(clientId)) return false;
    this.disconnectClient(clientId, 'session removed by an administrator');
    const session = this.sessions.get(clientId);
    if (session && !session.connection) this.endSession(session);
    return true;
  }

  /** This broker's figures behind $SYS (read at each $SYS interval; an admin API or metrics may read them too). */
  sysSnapshot(): SysSnapshot {
    let disconnected = 0;
    for (const session of this.sessions.values()) if (!session.connection) disconnected++;
    return {
      stats: this.stats,
      version: `moat ${this.version}`,
      disconnectedSessions: disconnected,
      subscriptions: this.router.subscriptionCount,
      retained: this.retained.size,
      overloaded: this.memory.overloaded,
      storedSessions: this.sessionCaps.size,
      heapUsed: process.memoryUsage().heapUsed,
    };
  }

  private publishSys(): void {
    let extra: Array<[string, string]> = [];
    if (this.hooks.sysTopics) {
      try {
        extra = [...this.hooks.sysTopics()];
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, 'sysTopics hook threw');
      }
    }
    const local: SysReport = { snapshot: this.sysSnapshot(), extra };
    // Multi-core mode: one worker publishes the whole broker's figures (retained, so every worker's subscribers get them).
    const report = this.sysAggregation ? this.sysAggregation.combine(local) : local;
    if (!report) return;
    this.publishingSys = true;
    try {
      for (const [topic, value] of [...sysTopics(report.snapshot, Date.now()), ...report.extra]) {
        this.route(topic, Buffer.from(value), 0, true, undefined);
      }
    } finally {
      this.publishingSys = false;
    }
  }

  // ---- recovery -----------------------------------------------------------------

  private async recover(): Promise<void> {
    const state = await this.store.open();
    const now = Date.now();
    // Messages whose expiry passed while the broker was down are dropped, here and from the store [MQTT-3.3.2-5].
    let expiredMessages = 0;
    for (const message of state.retained) {
      if (isExpired(message, now)) {
        this.store.deleteRetained(message.topic);
        expiredMessages++;
      } else this.retained.restore(message);
    }
    for (const { kind, key, value } of state.records) {
      let ofKind = this.records.get(kind);
      if (!ofKind) this.records.set(kind, (ofKind = new Map()));
      ofKind.set(key, value);
    }
    let restored = 0;
    // Offline the longest first, for the session caps (a session whose client was connected at the stop left now).
    const leftAt = (r: SessionRecord): number => r.leftAt ?? now;
    for (const stored of [...state.sessions].sort((a, b) => leftAt(a.record) - leftAt(b.record))) {
      if (this.restoreSession(stored, now)) restored++;
      else continue;
      this.sessionCaps.wentOffline(this.sessions.get(stored.record.clientId)!);
      for (const entry of stored.queue) {
        if (isExpired(entry.message, now)) {
          this.store.dequeue(stored.record.clientId, entry.seq);
          expiredMessages++;
        }
      }
    }
    if (state.sessions.length > 0 || state.retained.length > 0) {
      this.logger.info(
        { sessions: restored, expiredSessions: state.sessions.length - restored, retained: this.retained.size, expiredMessages },
        'state recovered',
      );
    }
  }

  /** Keeps a piece of security data, in memory and durably in the store. */
  saveRecord(kind: string, key: string, value: unknown): void {
    let ofKind = this.records.get(kind);
    if (!ofKind) this.records.set(kind, (ofKind = new Map()));
    ofKind.set(key, value);
    this.store.putRecord(kind, key, value);
  }

  deleteRecord(kind: string, key: string): void {
    this.records.get(kind)?.delete(key);
    this.store.deleteRecord(kind, key);
  }

  /** Records a persistent session's expiry settings; `expiresAt` only while no client is connected. */
  saveSessionRecord(session: Session): void {
    if (!session.persistent) return;
    const record: SessionRecord = { clientId: session.clientId, createdAt: session.createdAt, expiryInterval: session.expiryInterval };
    if (session.expiresAt !== undefined && !session.connection) record.expiresAt = session.expiresAt;
    if (session.owner?.username !== undefined) record.username = session.owner.username;
    if (session.owner?.remoteAddress !== undefined) record.remoteAddress = session.owner.remoteAddress;
    if (session.leftAt !== undefined && !session.connection) record.leftAt = session.leftAt;
    this.store.saveSession(record);
  }

  /**
   * Cluster mode: another broker takes this session over. Its connection, if any, is closed with DISCONNECT 0x8E
   * [MQTT-3.1.4-3]; a persistent session's state (subscriptions, queued and in-flight messages, QoS 2 packet ids
   * received) is returned and leaves this broker and its store; a clean one just ends. Undefined: nothing to hand over.
   */
  surrenderSession(clientId: string): RecoveredSession | undefined {
    const session = this.sessions.get(clientId);
    if (!session) return undefined;
    const conn = session.connection;
    if (conn) {
      this.logger.info({ clientId }, 'session taken over by a connection on another node');
      // Detached first: the connection's close must not bring the session back (its record, its expiry clock). Its
      // will is published as for a takeover here, unless it has a delay: the session goes on [MQTT-3.1.3-9].
      session.connection = undefined;
      const delayed = (conn.will?.properties?.willDelayInterval ?? 0) > 0;
      conn.disconnect(ReasonCode.SessionTakenOver, 'session taken over', { publishWill: !delayed });
    }
    // Its expiry clock stops here: the session lives on elsewhere.
    session.expiresAt = undefined;
    this.expiring.delete(session);
    if (!session.persistent) {
      this.destroySession(session);
      return undefined;
    }
    const record: SessionRecord = { clientId, createdAt: session.createdAt, expiryInterval: session.expiryInterval };
    if (session.expiresAt !== undefined) record.expiresAt = session.expiresAt;
    const handed: RecoveredSession = {
      record, subscriptions: [...session.subscriptions.values()], queue: [...session.queue], inflight: [...session.inflight.values()],
      incomingQos2: [...session.incomingQos2],
    };
    // What it held goes with it, not to other members of its shared groups.
    session.queue.clear();
    session.queuedBytes = 0;
    session.clearInflight();
    session.pendingWill = undefined;
    this.destroySession(session);
    return handed;
  }

  /** Cluster mode: a session another broker surrendered (`surrenderSession`) continues here, and in this broker's store. */
  adoptSession(stored: RecoveredSession): void {
    const existing = this.sessions.get(stored.record.clientId);
    if (existing) {
      const conn = existing.connection;
      existing.connection = undefined;
      conn?.disconnect(ReasonCode.SessionTakenOver, 'session taken over');
      this.endSession(existing);
    }
    const now = Date.now();
    if (!this.restoreSession(stored, now)) return;
    const session = this.sessions.get(stored.record.clientId)!;
    this.saveSessionRecord(session);
    for (const sub of stored.subscriptions) this.store.putSubscription(session.clientId, sub);
    for (const entry of session.queue) this.store.enqueue(session.clientId, entry);
    for (const entry of session.inflight.values()) this.store.putInflight(session.clientId, entry);
    for (const id of session.incomingQos2) this.store.putIncomingQos2(session.clientId, id);
    this.sessionCaps.wentOffline(session);
  }

  /** Returns false for a session that expired while the broker was down (it is deleted from the store). */
  private restoreSession(stored: RecoveredSession, now: number): boolean {
    const { record } = stored;
    const expiryInterval = record.expiryInterval ?? NEVER_EXPIRES;
    // A session whose client was still connected when the broker stopped starts its clock now.
    const expiresAt = expiryInterval === NEVER_EXPIRES ? undefined : record.expiresAt ?? now + expiryInterval * 1000;
    if (expiresAt !== undefined && expiresAt <= now) {
      this.store.deleteSession(record.clientId);
      return false;
    }
    const session = new Session(record.clientId, true, record.createdAt);
    session.expiryInterval = expiryInterval;
    session.leftAt = record.leftAt ?? now;
    if (expiresAt !== undefined) {
      session.expiresAt = expiresAt;
      this.expiring.add(session);
    }
    for (const sub of stored.subscriptions) this.subscribe(session, sub, false);
    for (const entry of stored.inflight) session.addInflight(entry);
    for (const entry of stored.queue) {
      if (isExpired(entry.message, now)) continue; // deleted from the store by recover()
      session.queue.push(entry);
      session.queuedBytes += heldSize(entry.message);
      session.restoreSeq(entry.seq);
    }
    for (const id of stored.incomingQos2) session.incomingQos2.add(id);
    this.sessions.set(session.clientId, session);
    const owner: SessionOwner = {};
    if (record.username !== undefined) owner.username = record.username;
    if (record.remoteAddress !== undefined) owner.remoteAddress = record.remoteAddress;
    this.sessionCaps.track(session, owner);
    return true;
  }
}

/** A predicate for the addresses and networks of `trusted_proxies`. */
function trustedBy(entries: string[]): (address: string) => boolean {
  const set = new AddressSet(entries);
  return (address) => set.has(address);
}

/** Who a connection's stored session counts against: the user authentication proved (else the CONNECT one), and its address. */
function ownerOf(conn: Connection): SessionOwner {
  // An unproven CONNECT user name is not counted: anyone could claim "alice" and push her sessions out.
  const username = conn.client?.identity?.username;
  return username === undefined ? { remoteAddress: conn.peer.remoteAddress } : { username, remoteAddress: conn.peer.remoteAddress };
}

/** The shared-subscription parts of a filter as the router keys them, or undefined for a plain filter. */
function shareOf(filter: string): { key: string; filter: string } | undefined {
  const shared = parseSharedFilter(filter);
  return shared && { key: filter, filter: shared.filter };
}

/** A connected client as the admin API shows it. */
export interface ConnectedClientView {
  id: string;
  /** The user authentication proved, else the CONNECT user name. */
  username: string | undefined;
  remoteAddress: string;
  remotePort: number;
  listener: string;
  protocolVersion: number;
  /** Epoch ms the CONNECT was accepted. */
  connectedAt: number;
  keepalive: number;
  /** Clean session (3.1.1) or clean start (5). */
  clean: boolean;
  /** Seconds the session outlives the connection (0: ends with it; 0xFFFFFFFF: never expires). */
  sessionExpiryInterval: number;
  /** What the connection carried so far: PUBLISH packets each way, and every byte each way. */
  traffic: { publishesIn: number; publishesOut: number; bytesIn: number; bytesOut: number };
}

/** A session as the admin API shows it. */
export interface SessionView {
  clientId: string;
  online: boolean;
  persistent: boolean;
  createdAt: number;
  /** Epoch ms the client left (offline sessions). */
  leftAt: number | undefined;
  /** Epoch ms the session expires (offline sessions with an expiry). */
  expiresAt: number | undefined;
  expiryInterval: number;
  subscriptions: SubscriptionRecord[];
  inflight: number;
  queued: number;
  queuedBytes: number;
}

function viewOf(session: Session): SessionView {
  return {
    clientId: session.clientId, online: session.connection !== undefined, persistent: session.persistent, createdAt: session.createdAt,
    leftAt: session.leftAt, expiresAt: session.expiresAt, expiryInterval: session.expiryInterval,
    subscriptions: [...session.subscriptions.values()].map((s) => ({ ...s })),
    inflight: session.inflight.size, queued: session.queue.length, queuedBytes: session.queuedBytes,
  };
}

export function createBroker(options: BrokerOptions = {}): Broker {
  return new Broker(options);
}
