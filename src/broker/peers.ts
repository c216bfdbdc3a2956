import type { Duplex } from 'node:stream';
import type { PeerInfo } from './connection.js';
import type { SysSnapshot } from './sys.js';
import type { Message } from './message.js';
import type { WillMessage } from '../protocol/index.js';

/**
 * Other brokers that share this one's routing (multi-core mode: sibling worker
 * processes). The broker core tells it what is subscribed here and hands it every
 * message it routes; how the message reaches the peers is the implementation's
 * business (src/multicore). A broker without peers never calls any of this.
 */
export interface PeerRouting {
  /** One more session here subscribes to a filter (a shared one, `$share/g/f`, once per group). */
  filterAdded(filter: string): void;
  /** One session fewer here subscribes to a filter (a shared one: its group is gone). */
  filterRemoved(filter: string): void;
  /**
   * A message about to be routed here (from a client, a will or the embedding program),
   * and whether it was published with RETAIN. Returns which shared groups this broker
   * serves for the message (the peers serve the others), or undefined for all of them.
   */
  published(message: Message, retain: boolean): SharedGroupFilter | undefined;
  /** How many peers `published` handed the last message to for their subscribers. */
  readonly forwarded: number;
  /**
   * The peers share this broker's retained messages in the store (cluster mode): a retained message from a peer is
   * applied in memory only, as its publisher's broker stored it.
   */
  readonly sharesRetainedStore?: boolean;
  /** Joins the peers once the broker's state is recovered, before any client is served. */
  join?(): Promise<void>;
}

/**
 * Cluster mode: a Client Identifier's session lives on one broker at a time. Before a CONNECT takes a session, the
 * broker claims it; the implementation makes this broker the owner and, if another broker had the session, brings it
 * over (`Broker.surrenderSession` there, `Broker.adoptSession` here) before it returns or resolves.
 */
export interface SessionOwnership {
  claim(clientId: string, clean: boolean): void | Promise<void>;
  /** A connection with a will is up: kept where another broker finds it, should this one die before it is published. */
  willKept?(clientId: string, will: WillMessage): void;
  /** That connection closed (its will published, waiting for its delay, or discarded). */
  willGone?(clientId: string): void;
}

/** Answers whether this broker hands a message to a member of the shared group `key` (`$share/g/f`). */
export type SharedGroupFilter = (key: string) => boolean;

/** A client identifier for a client that sent none [MQTT-3.1.3-6]. */
export type ClientIdAssigner = () => string;

/**
 * Multi-core mode: which process serves a connection whose transport (TLS, WebSocket, a PROXY header) ran in this
 * one. A TLS session or a WebSocket cannot move to another process, so the implementation reads the start of the
 * CONNECT from `stream` and either calls `serveHere` (with what it read put back) or relays the stream to the process
 * that owns the Client Identifier. The broker core knows nothing of how.
 */
export interface ConnectionRouting {
  route(stream: Duplex, peer: PeerInfo, listener: number, serveHere: () => void): void;
}

/** A broker's $SYS figures: the core's snapshot and the topics hooks add (the guard's). */
export interface SysReport {
  snapshot: SysSnapshot;
  extra: Array<[string, string]>;
}

/**
 * Multi-core mode: $SYS describes the whole broker. Given this broker's figures at each $SYS interval, returns
 * the figures to publish (the sum over every broker, from the one that publishes them), or undefined if another
 * broker publishes them.
 */
export interface SysAggregation {
  combine(local: SysReport): SysReport | undefined;
}
