import type { ClientIdAssigner, ConnectionRouting, PeerRouting, SessionOwnership, SysAggregation } from './peers.js';
import type { QoS } from '../protocol/index.js';
import type { BrokerStore } from '../store/store.js';
import type { AuthMethod } from './enhanced-auth.js';
import type { BrokerHooks } from './hooks.js';
import { defaultMemoryHighWater } from './overload.js';
import type { Logger } from './logger.js';

export interface ListenerOptions {
  /** Name used in logs and passed to hooks; defaults to "host:port". */
  name?: string;
  host?: string;
  port?: number;
  /** A Unix domain socket to listen on instead of `host` and `port` (local bridges, sidecars); its clients count as local. */
  path?: string;
  /**
   * Accept clients that no authenticate hook vouched for. Defaults to true on
   * loopback addresses and false elsewhere; a non-loopback listener with no
   * authentication refuses to start unless this is set to true explicitly.
   */
  allowAnonymous?: boolean;
  /** Connections open at once on this listener (Mosquitto's per-listener max_connections); more are closed as they arrive. */
  maxConnections?: number;
  /** MQTT over TLS on this listener (usually port 8883); with `websocket`, `wss://`. */
  tls?: TlsListenerOptions;
  /** MQTT over WebSockets on this listener (browsers; usually port 8083, or 8084 with `tls`). */
  websocket?: WebSocketOptions;
  /**
   * Behind a load balancer (plain TCP listeners): every connection starts with a PROXY protocol header (v1 or v2)
   * naming the client, whose address is then the client's everywhere (logs, audit, hooks, bans, limits). A
   * connection without a valid one is closed.
   */
  proxyProtocol?: boolean;
  /**
   * With `proxyProtocol`: the addresses and CIDR networks allowed to connect (the balancers); absent: any. On a
   * WebSocket listener: the reverse proxies whose `Forwarded` / `X-Forwarded-For` name the client.
   */
  trustedProxies?: string[];
}

export interface WebSocketOptions {
  /** The URL path clients connect to (default "/mqtt"); others get 404. */
  path?: string;
  /**
   * Origins a browser may connect from, e.g. "https://app.example.com"; a request with another Origin gets 403
   * before the upgrade. A client that sends no Origin (not a browser) is not judged by it. Absent: any.
   */
  allowedOrigins?: string[];
  /** permessage-deflate compression (default off: CPU on every message, and compression can leak secrets). */
  perMessageDeflate?: boolean;
  /**
   * With `trustedProxies`: the header the reverse proxy maintains (sets or appends to, whatever the client sent):
   * `x-forwarded-for` (default) or `forwarded`. Only that one is read.
   */
  forwardedHeader?: 'x-forwarded-for' | 'forwarded';
}

/** Keys and certificates in PEM, as Node's `tls.createServer` takes them. */
export interface TlsListenerOptions {
  /** The server's certificate chain (PEM); required unless `psk` is given (a PSK-only listener). */
  cert?: string | Buffer;
  /** Its private key (PEM); given with `cert`. */
  key?: string | Buffer;
  /** Certificate authorities that client certificates must chain to (default: Node's bundled roots). */
  ca?: string | Buffer;
  /**
   * Certificate revocation lists (PEM, one list per string) of the client certificates' CAs: a revoked certificate
   * is refused at the handshake. Node then checks the whole chain, so each CA in it needs its CRL, and one past its next update
   * fails every certificate it covers.
   */
  crl?: string | Buffer | Array<string | Buffer>;
  /**
   * TLS-PSK: the pre-shared key of each identity (a Map, or a `PskKeys` whose contents a reload replaces). A client
   * that proves one is that identity (`pskIdentity` in the authentication request), over TLS 1.2 (PSK suites) or
   * TLS 1.3; the listener then issues no session tickets.
   */
  psk?: Pick<ReadonlyMap<string, Buffer>, 'get'>;
  /** With `psk`: the identity hint sent to TLS 1.2 clients (TLS 1.3 has none). */
  pskIdentityHint?: string;
  /**
   * The files these options were read from (set by the configuration loader): a running `moat` watches them and
   * applies a change to new handshakes. The broker itself does not read it.
   */
  sourceFiles?: string[];
  /**
   * Ask clients for a certificate. A verified one reaches the authentication hooks as
   * `certificate`; one that does not verify ends the handshake.
   */
  requestClientCertificate?: boolean;
  /** Refuse, at the handshake, clients without a verified certificate (mutual TLS). Implies requestClientCertificate. */
  requireClientCertificate?: boolean;
  /** The passphrase of an encrypted `key`. */
  passphrase?: string;
  /** The oldest TLS version accepted (default TLS 1.2). */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /**
   * OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults unless named); default Node's, or with
   * `psk` the PSK suites first, then Node's.
   */
  ciphers?: string;
}

export type QueueOverflowPolicy = 'drop_new' | 'drop_oldest';

/** Limits with safe defaults; every one is enforced by the engine. */
export interface BrokerLimits {
  /** Largest packet accepted from a client, in bytes, fixed header included. Larger: connection closed. */
  maxPacketSize: number;
  /** Open client connections across all listeners; CONNECT beyond it gets CONNACK 3 (server unavailable). */
  maxConnections: number;
  /** Longest topic name or filter, in UTF-8 bytes. */
  maxTopicLength: number;
  /** Most levels in a topic name or filter. */
  maxTopicLevels: number;
  /** QoS 1/2 messages sent to one client and not yet acknowledged. */
  maxInflightMessages: number;
  /** Payload bytes of those messages; past it the next waits in the queue (a single larger message still goes). 0 means no byte limit. */
  maxInflightBytes: number;
  /** QoS 1/2 messages waiting for one session (offline, or inflight window full). */
  maxQueuedMessages: number;
  /** Payload bytes waiting for one session; 0 means no byte limit. */
  maxQueuedBytes: number;
  /** A full session queue drops the new message (`drop_new`, as Mosquitto) or the oldest queued one (`drop_oldest`). */
  queueOverflow: QueueOverflowPolicy;
  /** Bytes written to a socket and not yet taken by the peer before the client counts as a slow consumer. */
  maxOutboundBuffer: number;
  /** Seconds a socket may stay open without sending CONNECT. */
  connectTimeout: number;
  /** Retained messages kept; a retained PUBLISH to a new topic beyond it is refused (MQTT 5: 0x97). 0 = no limit. */
  maxRetainedMessages: number;
  /**
   * Longest keep-alive in seconds (Mosquitto's `max_keepalive`); 0 = no cap. A client asking for more, or for 0
   * (none), is held to it: MQTT 5 is told in CONNACK Server Keep Alive [MQTT-3.2.2-21]; MQTT 3.1/3.1.1 cannot be
   * told, so it is refused with CONNACK 2, as Mosquitto does. A client asking for less keeps its own value.
   */
  maxKeepalive: number;
  /**
   * Overload protection: past this many bytes held (V8 heap in use plus Buffers) the broker refuses new connections
   * (CONNACK 3 / 0x89 Server busy) and sheds QoS 0 messages to slow consumers first, until it is back below
   * `memoryLowWater` (0: 80% of the high-water mark). Default: three quarters of the memory the process may use;
   * 0 turns it off (past 85% of V8's heap limit still counts, as the process would abort there).
   */
  memoryHighWater: number;
  memoryLowWater: number;
  /** Stored sessions (clean session off, or a session expiry) in all; 0 = no cap. At the cap the oldest offline one goes. */
  maxSessions: number;
  /** Stored sessions per user name, and per source address (an IPv6 /64); 0 = no cap. The owner's oldest offline one goes first. */
  maxSessionsPerUser: number;
  maxSessionsPerAddress: number;
  /** Longest session expiry, in seconds, for clients no authentication vouched for (anonymous); 0 = no cap of its own. */
  maxSessionExpiryAnonymous: number;
}

export const DEFAULT_LIMITS: BrokerLimits = {
  maxPacketSize: 1024 * 1024,
  maxConnections: 100_000,
  maxTopicLength: 65_535,
  maxTopicLevels: 128,
  // Acknowledgements are read once per event-loop turn, so one subscriber takes at most this many
  // messages a turn: 20 (Mosquitto's default) made a subscriber fed by many publishers fall behind.
  maxInflightMessages: 1000,
  maxInflightBytes: 16 * 1024 * 1024,
  maxQueuedMessages: 1000,
  maxQueuedBytes: 16 * 1024 * 1024,
  queueOverflow: 'drop_new',
  maxOutboundBuffer: 1024 * 1024,
  connectTimeout: 10,
  maxRetainedMessages: 1_000_000,
  maxKeepalive: 0,
  memoryHighWater: defaultMemoryHighWater(),
  memoryLowWater: 0,
  maxSessions: 1_000_000,
  maxSessionsPerUser: 0,
  maxSessionsPerAddress: 0,
  maxSessionExpiryAnonymous: 86_400,
};

/**
 * What the broker offers MQTT 5 clients. One object fills the CONNACK and drives
 * enforcement, so what is advertised is what is enforced.
 */
export interface BrokerCapabilities {
  /** Highest QoS accepted in PUBLISH and granted in SUBACK. */
  maximumQoS: QoS;
  retainAvailable: boolean;
  wildcardSubscriptionAvailable: boolean;
  subscriptionIdentifiersAvailable: boolean;
  sharedSubscriptionAvailable: boolean;
  /** Topic aliases a client may set up toward the broker, per connection. */
  topicAliasMaximum: number;
  /** Topic aliases the broker sets up toward a client (at most the client's own maximum); 0 = none. */
  outgoingTopicAliases: number;
  /** QoS 1/2 publishes a client may have unacknowledged toward the broker (our Receive Maximum). */
  receiveMaximum: number;
  /** Keep-alive the broker imposes on MQTT 5 clients instead of theirs, in seconds; undefined = theirs. `limits.maxKeepalive` caps it. */
  serverKeepAlive: number | undefined;
  /** Longest Session Expiry Interval granted, in seconds; 0xFFFFFFFF = no cap. */
  maximumSessionExpiryInterval: number;
}

export const DEFAULT_CAPABILITIES: BrokerCapabilities = {
  maximumQoS: 2,
  retainAvailable: true,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifiersAvailable: true,
  sharedSubscriptionAvailable: true,
  topicAliasMaximum: 64,
  outgoingTopicAliases: 0,
  receiveMaximum: 1024,
  serverKeepAlive: undefined,
  maximumSessionExpiryInterval: 0xffff_ffff,
};

export interface BrokerOptions {
  /** Defaults to one listener on 127.0.0.1:1883. An empty list starts none (use `broker.accept`). */
  listeners?: ListenerOptions[];
  limits?: Partial<BrokerLimits>;
  /** MQTT 5 features offered and enforced. */
  capabilities?: Partial<BrokerCapabilities>;
  /** MQTT 5 enhanced authentication methods, by Authentication Method name. */
  authMethods?: Record<string, AuthMethod>;
  /** Seconds between $SYS/broker/... updates; 0 turns them off. */
  sysInterval?: number;
  /**
   * A PUBLISH that `authorizePublish` refuses: `acknowledge` (default) drops it after the usual
   * acknowledgement (MQTT 5: PUBACK/PUBREC 0x87); `disconnect` closes the connection (MQTT 5: DISCONNECT 0x87).
   */
  unauthorizedPublish?: 'acknowledge' | 'disconnect';
  /** One set of hooks or several, applied in order. */
  hooks?: BrokerHooks | BrokerHooks[];
  store?: BrokerStore;
  logger?: Logger;
  /**
   * false: plan the listeners (names, anonymous policy) but bind none; another process
   * accepts the sockets and hands them over through `broker.acceptOn` (multi-core mode).
   */
  bindListeners?: boolean;
  /** Brokers sharing this one's routing (multi-core mode, src/multicore; cluster mode, src/cluster). */
  peers?: PeerRouting;
  /** Who owns each session among several brokers (cluster mode, src/cluster). */
  sessionOwnership?: SessionOwnership;
  /** Which broker serves a connection whose transport ran here (multi-core mode, src/multicore). */
  connectionRouting?: ConnectionRouting;
  /** Whose figures $SYS publishes (multi-core mode: the whole broker's, from one worker). */
  sysAggregation?: SysAggregation;
  /** Makes identifiers for clients that send none; default `moat-` and 12 random base64url characters. */
  assignClientId?: ClientIdAssigner;
}
