import type { BrokerStore } from '../store/store.js';
import type { BrokerHooks } from './hooks.js';
import type { Logger } from './logger.js';

export interface ListenerOptions {
  /** Name used in logs and passed to hooks; defaults to "host:port". */
  name?: string;
  host?: string;
  port?: number;
  /**
   * Accept clients that no authenticate hook vouched for. Defaults to true on
   * loopback addresses and false elsewhere; a non-loopback listener with no
   * authentication refuses to start unless this is set to true explicitly.
   */
  allowAnonymous?: boolean;
}

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
  /** QoS 1/2 messages waiting for one session (offline, or inflight window full). */
  maxQueuedMessages: number;
  /** Payload bytes waiting for one session; 0 means no byte limit. */
  maxQueuedBytes: number;
  /** Bytes written to a socket and not yet taken by the peer before the client counts as a slow consumer. */
  maxOutboundBuffer: number;
  /** Seconds a socket may stay open without sending CONNECT. */
  connectTimeout: number;
}

export const DEFAULT_LIMITS: BrokerLimits = {
  maxPacketSize: 1024 * 1024,
  maxConnections: 100_000,
  maxTopicLength: 65_535,
  maxTopicLevels: 128,
  maxInflightMessages: 20,
  maxQueuedMessages: 1000,
  maxQueuedBytes: 16 * 1024 * 1024,
  maxOutboundBuffer: 1024 * 1024,
  connectTimeout: 10,
};

export interface BrokerOptions {
  /** Defaults to one listener on 127.0.0.1:1883. An empty list starts none (use `broker.accept`). */
  listeners?: ListenerOptions[];
  limits?: Partial<BrokerLimits>;
  /** Seconds between $SYS/broker/... updates; 0 turns them off. */
  sysInterval?: number;
  /** One set of hooks or several, applied in order. */
  hooks?: BrokerHooks | BrokerHooks[];
  store?: BrokerStore;
  logger?: Logger;
}
