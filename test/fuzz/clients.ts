/**
 * The well-behaved clients of a fuzz run, on connections of their own: a minimal raw MQTT client on the
 * project's codec; the canary (QoS 1 publish → deliver round trips, every one checked for loss,
 * duplication and order); the $SYS monitor; and the sweeper that clears what fuzz clients left behind on
 * purpose (persistent sessions, retained messages) so that memory can be compared with the baseline.
 */
import net from 'node:net';
import {
  encodePacket, PacketDecoder, PacketType,
  type ConnackPacket, type ConnectPacket, type Packet, type ProtocolVersion, type PublishPacket, type QoS,
} from '../../src/protocol/index.js';

/** A user name and password for the well-behaved clients of an authenticated run. */
export interface Credentials {
  username: string;
  password: Buffer;
}

export class RawClient {
  private readonly decoder = new PacketDecoder();
  private waiters: Array<{ match: (p: Packet) => boolean; resolve: (p: Packet) => void }> = [];
  onPacket: (p: Packet) => void = () => {};
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(readonly socket: net.Socket, readonly version: ProtocolVersion) {
    this.decoder.version = version;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      const error = this.decoder.push(chunk, (packet) => {
        const i = this.waiters.findIndex((w) => w.match(packet));
        if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(packet);
        else this.onPacket(packet);
        return true;
      });
      if (error) socket.destroy();
    });
    socket.on('error', () => {});
    this.closedPromise = new Promise((resolve) => socket.once('close', () => {
      this.closed = true;
      resolve();
    }));
  }

  static open(port: number, version: ProtocolVersion, timeoutMs = 5000): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('connect timed out'));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new RawClient(socket, version));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Opens a connection and completes CONNECT/CONNACK; rejects on refusal. */
  static async connect(port: number, connect: Omit<ConnectPacket, 'type' | 'protocolName'>, timeoutMs = 5000): Promise<RawClient> {
    const client = await RawClient.open(port, connect.protocolVersion, timeoutMs);
    const packet: ConnectPacket = { type: PacketType.CONNECT, protocolName: connect.protocolVersion === 3 ? 'MQIsdp' : 'MQTT', ...connect };
    client.send(packet);
    const connack = (await client.next((p) => p.type === PacketType.CONNACK, timeoutMs)) as ConnackPacket;
    if (connack.returnCode !== 0) {
      client.socket.destroy();
      throw new Error(`CONNACK ${connack.returnCode} for ${connect.clientId}`);
    }
    return client;
  }

  send(packet: Packet): void {
    if (!this.closed) this.socket.write(encodePacket(packet, this.version));
  }

  /** The next packet that matches (packets that no waiter wants go to onPacket). */
  next(match: (p: Packet) => boolean, timeoutMs: number): Promise<Packet> {
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (p: Packet) => {
          clearTimeout(timer);
          resolve(p);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no matching packet within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async subscribe(filter: string, qos: QoS, packetId = 1, timeoutMs = 5000): Promise<void> {
    this.send({ type: PacketType.SUBSCRIBE, packetId, subscriptions: [{ filter, qos }] });
    const suback = await this.next((p) => p.type === PacketType.SUBACK && p.packetId === packetId, timeoutMs);
    if (suback.type === PacketType.SUBACK && suback.returnCodes[0]! >= 0x80) throw new Error(`SUBACK refused ${filter}`);
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.send({ type: PacketType.DISCONNECT });
      this.socket.end();
    }
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    await this.closedPromise;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- canary

export interface CanaryReport {
  roundTrips: number;
  maxRoundTripMs: number;
  /** Problems seen: loss, duplicates, reordering, an unexpected close. Empty when all is well. */
  failures: string[];
}

/**
 * One connection that subscribes to a topic of its own at QoS 1 and publishes to it at QoS 1, one
 * message at a time: each must be acknowledged (PUBACK) and delivered exactly once, in order, within
 * `timeoutMs`.
 */
export class Canary {
  private running = false;
  private loop: Promise<void> | undefined;
  readonly report: CanaryReport = { roundTrips: 0, maxRoundTripMs: 0, failures: [] };
  private expected = 0;
  private readonly received = new Map<number, number>();

  private constructor(private readonly client: RawClient, private readonly topic: string, private readonly timeoutMs: number) {}

  static async start(port: number, tag: string, timeoutMs: number, credentials?: Credentials): Promise<Canary> {
    const client = await RawClient.connect(port, { protocolVersion: 4, clean: true, keepalive: 0, clientId: `canary-${tag}`, ...credentials });
    const topic = `fuzz-canary/${tag}/round-trip`;
    await client.subscribe(topic, 1);
    const canary = new Canary(client, topic, timeoutMs);
    client.onPacket = (p) => canary.onPacket(p);
    canary.running = true;
    canary.loop = canary.run();
    return canary;
  }

  private onPacket(p: Packet): void {
    if (p.type !== PacketType.PUBLISH) return;
    if (p.qos > 0) this.client.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    const seq = Number(p.payload.toString());
    const n = (this.received.get(seq) ?? 0) + 1;
    this.received.set(seq, n);
    if (n > 1) this.report.failures.push(`canary message ${seq} delivered ${n} times`);
    else if (seq !== this.expected) this.report.failures.push(`canary message ${seq} delivered while ${this.expected} was expected`);
  }

  private async run(): Promise<void> {
    let packetId = 0;
    while (this.running && this.report.failures.length === 0) {
      const seq = ++this.expected;
      packetId = (packetId % 65535) + 1;
      const started = performance.now();
      const id = packetId;
      const puback = this.client.next((p) => p.type === PacketType.PUBACK && p.packetId === id, this.timeoutMs);
      const publish: PublishPacket = { type: PacketType.PUBLISH, qos: 1, dup: false, retain: false, topic: this.topic, packetId: id, payload: Buffer.from(String(seq)) };
      this.client.send(publish);
      try {
        await puback;
      } catch {
        this.report.failures.push(`canary message ${seq}: no PUBACK within ${this.timeoutMs} ms${this.client.closed ? ' (connection closed by the broker)' : ''}`);
        break;
      }
      const deadline = started + this.timeoutMs;
      while (!this.received.has(seq) && performance.now() < deadline && !this.client.closed) await new Promise((r) => setTimeout(r, 1));
      if (!this.received.has(seq)) {
        this.report.failures.push(`canary message ${seq} lost: not delivered within ${this.timeoutMs} ms${this.client.closed ? ' (connection closed by the broker)' : ''}`);
        break;
      }
      this.received.delete(seq - 1);
      this.report.roundTrips++;
      this.report.maxRoundTripMs = Math.max(this.report.maxRoundTripMs, performance.now() - started);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /** Stops after the round trip in progress; a late duplicate would still be seen until then. */
  async stop(): Promise<CanaryReport> {
    this.running = false;
    await this.loop;
    await new Promise((r) => setTimeout(r, 50));
    if (this.client.closed) this.report.failures.push('canary connection closed by the broker');
    await this.client.close();
    return this.report;
  }
}

// ---------------------------------------------------------------- $SYS monitor

export class SysMonitor {
  readonly values = new Map<string, string>();
  /** Increments on each `$SYS/broker/heap/current` update. */
  heapUpdates = 0;

  private constructor(private readonly client: RawClient) {}

  static async start(port: number, tag: string, credentials?: Credentials): Promise<SysMonitor> {
    const client = await RawClient.connect(port, { protocolVersion: 4, clean: true, keepalive: 0, clientId: `sysmon-${tag}`, ...credentials });
    const monitor = new SysMonitor(client);
    client.onPacket = (p) => {
      if (p.type !== PacketType.PUBLISH) return;
      monitor.values.set(p.topic, p.payload.toString());
      if (p.topic === '$SYS/broker/heap/current') monitor.heapUpdates++;
    };
    await client.subscribe('$SYS/broker/#', 0);
    return monitor;
  }

  number(topic: string): number | undefined {
    const v = this.values.get(`$SYS/broker/${topic}`);
    return v === undefined ? undefined : Number(v);
  }

  /** Waits for `count` more $SYS rounds (bounded by `timeoutMs`). */
  async nextRounds(count: number, timeoutMs: number): Promise<void> {
    const target = this.heapUpdates + count;
    const deadline = Date.now() + timeoutMs;
    while (this.heapUpdates < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (this.heapUpdates < target) throw new Error(`no $SYS update within ${timeoutMs} ms`);
  }

  get closed(): boolean {
    return this.client.closed;
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

// ---------------------------------------------------------------- sweeper

/**
 * Ends each stored session (MQTT 5 Clean Start, Session Expiry 0), `concurrency` at a time. In an
 * authenticated run a Client Identifier may be banned for flapping (the fuzz configuration bans for 2 s):
 * a refusal as banned (0x8A) is tried again after the ban, for up to `bannedRetryMs`.
 */
export async function sweepSessions(port: number, clientIds: Iterable<string>, concurrency = 16, credentials?: Credentials, bannedRetryMs = 10_000): Promise<{ swept: number; failed: string[] }> {
  const queue = [...clientIds];
  const failed: string[] = [];
  let swept = 0;
  const worker = async (): Promise<void> => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      const deadline = Date.now() + bannedRetryMs;
      for (;;) {
        try {
          const c = await RawClient.connect(port, { protocolVersion: 5, clean: true, keepalive: 0, clientId: id, ...credentials });
          await c.close();
          swept++;
        } catch (err) {
          const message = (err as Error).message;
          if (message.startsWith('CONNACK 138 ') && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 500));
            continue;
          }
          failed.push(`${JSON.stringify(id)}: ${message}`);
        }
        break;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { swept, failed };
}

/** Clears every retained message under `#` (publishes an empty retained message to each topic found). */
export async function sweepRetained(port: number, tag: string, quietMs = 300, limitMs = 15_000, credentials?: Credentials): Promise<number> {
  const client = await RawClient.connect(port, { protocolVersion: 5, clean: true, keepalive: 0, clientId: `sweeper-${tag}`, ...credentials });
  const topics = new Set<string>();
  let last = Date.now();
  client.onPacket = (p) => {
    if (p.type !== PacketType.PUBLISH) return;
    if (p.qos > 0) client.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    if (p.retain) {
      topics.add(p.topic);
      last = Date.now();
    }
  };
  await client.subscribe('#', 0);
  const deadline = Date.now() + limitMs;
  while (Date.now() - last < quietMs && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const topic of topics) client.send({ type: PacketType.PUBLISH, qos: 0, dup: false, retain: true, topic, payload: Buffer.alloc(0) });
  await client.close();
  return topics.size;
}
