/** Messages between the benchmark runner and its load-generator processes. */

export interface WorkerSetup {
  role: 'publish' | 'subscribe';
  host: string;
  port: number;
  /** TCP, or MQTT over WebSockets (`ws://host:port/mqtt`, bench/lib/ws-link.ts). */
  transport: 'tcp' | 'ws';
  /** Client ids start with it, so runs and roles never collide. */
  idPrefix: string;
  /** Publishers (role publish) or subscribers (role subscribe); stream s publishes to `${topicPrefix}/${s}`. */
  streams: number;
  topicPrefix: string;
  /** Subscribers take `${topicPrefix}/+` (one subscriber for all streams) instead of their own stream's topic. */
  wildcard: boolean;
  qos: 0 | 1 | 2;
  /** Subscribers connect with clean session 0 (persistent) when false. */
  cleanSubscribers: boolean;
  payloadSize: number;
  /** Messages in flight per publisher (QoS 0: messages per write). */
  window: number;
  /** Messages per second per publisher; 0 = as fast as the window allows. */
  rate: number;
  /** Subscriber connections: stream s goes to `ports[s % ports.length]` (cluster rows: subscribers on other nodes); default `port`. */
  ports?: number[];
  /** Payload envelopes (docs/payload-encryption.md): publishers seal, subscribers open deliveries the broker sealed. */
  envelope?: EnvelopeLoad;
}

export interface EnvelopeLoad {
  /** The 32-byte key every client holds (hex), key id 1 in the broker's key file. */
  keyHex: string;
  /** Publishers seal each payload (its first 16 bytes as ever: stream, sequence number, send time). */
  seal: boolean;
  /** Subscribers open each delivery with the broker-to-client key derived from it (`reencrypt: true`). */
  open: boolean;
}

/** The key id the load generator's clients have in the broker's payload key file. */
export const ENVELOPE_KEY_ID = 1;

export function topicOf(setup: WorkerSetup, stream: number): string {
  return `${setup.topicPrefix}/${stream}`;
}

export function filterOf(setup: WorkerSetup, stream: number): string {
  return setup.wildcard ? `${setup.topicPrefix}/+` : topicOf(setup, stream);
}

export interface Counters {
  messages: number;
  missing: number;
  duplicates: number;
}

export type WorkerCommand =
  | { type: 'setup'; setup: WorkerSetup }
  | { type: 'go'; warmupMs: number; measureMs: number }
  | { type: 'finish'; drainMs: number };

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'measured'; window: Counters & { elapsedMs: number } }
  | { type: 'totals'; counters: Counters; perStream: number[]; latencies: number[] }
  | { type: 'error'; message: string };

/**
 * Idle connections per source address (bench/load/idle-worker.ts). connect() picks even ports first, about 14,000 of
 * them here; past those its search slows it 2-3× (18,000 from one address: 3,449/s,
 * split at 14,000: 9,153/s, 2026-12-04).
 */
export const PER_ADDRESS = 14_000;
