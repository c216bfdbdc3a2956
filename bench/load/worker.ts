/**
 * A load-generator process (started with fork by bench/load/run-load.ts): raw
 * sockets, packets encoded once, every delivery checked by stream and sequence
 * number; `transport: 'ws'` puts the same bytes in WebSocket frames instead
 * (bench/lib/ws-link.ts). Role `subscribe` holds subscribers and acknowledges what they get;
 * role `publish` keeps a window of QoS 1/2 messages in flight per publisher (or a
 * fixed rate) and counts acknowledgements. With `envelope`, publishers seal each
 * payload as a device would (moat-mqtt/payload) and subscribers open what the
 * broker sealed for them; a delivery that does not open counts as lost.
 */
import net from 'node:net';
import { connectPacket, FrameReader, PublishTemplate, subscribePacket, DISCONNECT } from '../lib/frames.js';
import { WebSocketLink, type Link } from '../lib/ws-link.js';
import { deliveryKey, HEADER_LENGTH, isEnvelopeError, openEnvelope, parseEnvelope, sealEnvelope, TAG_LENGTH } from '../../src/payload/index.js';
import { ENVELOPE_KEY_ID, filterOf, topicOf, type Counters, type WorkerCommand, type WorkerReply, type WorkerSetup } from './protocol.js';

const send = (reply: WorkerReply): void => {
  process.send!(reply);
};

function connect(port: number, host: string, clientId: string, clean: boolean, localAddress?: string): Promise<{ socket: net.Socket; sessionPresent: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, localAddress });
    socket.setNoDelay(true);
    socket.once('error', reject);
    socket.once('connect', () => socket.write(connectPacket(clientId, clean)));
    socket.once('data', (chunk) => {
      socket.off('error', reject);
      if (chunk[0] !== 0x20 || chunk[3] !== 0) reject(new Error(`CONNACK refused for ${clientId}: ${chunk.toString('hex')}`));
      else resolve({ socket, sessionPresent: (chunk[2]! & 1) === 1 });
    });
  });
}

/** The same handshake over WebSockets (`transport: 'ws'`). */
async function connectWs(port: number, host: string, clientId: string, clean: boolean): Promise<{ socket: Link; sessionPresent: boolean }> {
  const link = await WebSocketLink.open(port, host);
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    let connack = Buffer.alloc(0);
    const onConnack = (chunk: Buffer): void => {
      connack = Buffer.concat([connack, chunk]); // some brokers (Aedes) send a packet in several frames
      if (connack.length < 4) return;
      link.off('data', onConnack).off('error', onError);
      if (connack[0] !== 0x20 || connack[3] !== 0) reject(new Error(`CONNACK refused for ${clientId}: ${connack.toString('hex')}`));
      else resolve({ socket: link, sessionPresent: (connack[2]! & 1) === 1 });
    };
    link.on('error', onError).on('data', onConnack);
    link.write(connectPacket(clientId, clean));
  });
}

/** A client connection over the setup's transport, CONNACK received (to `port`, default the setup's). */
function open(setup: WorkerSetup, clientId: string, clean: boolean, port = setup.port): Promise<{ socket: Link; sessionPresent: boolean }> {
  return setup.transport === 'ws' ? connectWs(port, setup.host, clientId, clean) : connect(port, setup.host, clientId, clean);
}

function ack(type: number, packetId: number): Buffer {
  return Buffer.from([type, 2, packetId >> 8, packetId & 0xff]);
}

// ---- subscribers --------------------------------------------------------------

/** Far more publishers than any run has: a larger stream number means the payload is not one of ours. */
const MAX_STREAMS = 1 << 16;

class SubscriberSide {
  readonly counters: Counters = { messages: 0, missing: 0, duplicates: 0 };
  /** Next sequence number expected, per subscriber connection and publishing stream. */
  private readonly expected: number[][] = [];
  /** Messages received per publishing stream, all subscribers together. */
  private readonly received: number[] = [];
  private latencies = new Float64Array(1 << 20);
  private latencyCount = 0;
  recordLatency = false;
  /** The broker-to-client key when deliveries arrive sealed. */
  private readonly openingKey: Buffer | undefined;

  constructor(private readonly setup: WorkerSetup) {
    if (setup.envelope?.open) this.openingKey = deliveryKey(Buffer.from(setup.envelope.keyHex, 'hex'));
  }

  async start(): Promise<void> {
    const { streams, qos } = this.setup;
    for (let s = 0; s < streams; s++) {
      const clientId = `${this.setup.idPrefix}-sub-${s}`;
      const ports = this.setup.ports;
      const { socket } = await open(this.setup, clientId, this.setup.cleanSubscribers, ports ? ports[s % ports.length] : this.setup.port);
      socket.on('error', () => {});
      const expected: number[] = [];
      this.expected.push(expected);
      const out: Buffer[] = [];
      const reader = new FrameReader((first, buf, start, end) => this.onPacket(first, buf, start, end, out, expected));
      socket.on('data', (chunk: Buffer) => {
        reader.push(chunk);
        if (out.length > 0) {
          socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
          out.length = 0;
        }
      });
      await new Promise<void>((resolve) => {
        const onSuback = (chunk: Buffer): void => {
          if (chunk[0] === 0x90) {
            socket.off('data', onSuback);
            resolve();
          }
        };
        socket.on('data', onSuback);
        socket.write(subscribePacket(1, filterOf(this.setup, s), qos));
      });
    }
  }

  private onPacket(first: number, buf: Buffer, start: number, end: number, out: Buffer[], expectedOf: number[]): void {
    const type = first >> 4;
    if (type === 6) {
      out.push(ack(0x70, buf.readUInt16BE(start))); // PUBREL -> PUBCOMP
      return;
    }
    if (type !== 3) return;
    const qos = (first >> 1) & 3;
    const topicEnd = start + 2 + buf.readUInt16BE(start);
    let at = topicEnd;
    if (qos > 0) {
      out.push(ack(qos === 1 ? 0x40 : 0x50, buf.readUInt16BE(at)));
      at += 2;
    }
    if (this.openingKey) {
      const envelope = parseEnvelope(buf.subarray(at, end));
      const plaintext = isEnvelopeError(envelope) ? undefined : openEnvelope(this.openingKey, envelope, buf.toString('utf8', start + 2, topicEnd));
      if (!plaintext) return; // not sealed for us: lost
      buf = plaintext;
      at = 0;
      end = plaintext.length;
    }
    if (end - at < 16) return; // not ours
    const stream = buf.readUInt32BE(at);
    if (stream >= MAX_STREAMS) return; // not a payload of this run (an envelope nobody opened): counted as lost
    const seq = buf.readUInt32BE(at + 4);
    const expected = expectedOf[stream] ?? 0;
    if (seq === expected) expectedOf[stream] = seq + 1;
    else if (seq > expected) {
      this.counters.missing += seq - expected;
      expectedOf[stream] = seq + 1;
    } else this.counters.duplicates++;
    this.received[stream] = (this.received[stream] ?? 0) + 1;
    this.counters.messages++;
    if (this.recordLatency && this.latencyCount < this.latencies.length) {
      const sent = buf.readBigUInt64BE(at + 8);
      this.latencies[this.latencyCount++] = Number(process.hrtime.bigint() - sent) / 1e6;
    }
  }

  latencySample(): number[] {
    return Array.from(this.latencies.subarray(0, this.latencyCount));
  }

  receivedPerStream(): number[] {
    return [...this.received];
  }
}

// ---- publishers ---------------------------------------------------------------

class Publisher {
  sent = 0;
  acked = 0;
  private inflight = 0;
  private nextId = 1;
  private running = false;
  private readonly template: PublishTemplate;
  private readonly reader: FrameReader;
  private rateTimer: NodeJS.Timeout | undefined;
  /** With `envelope.seal`: the key, the next counter, and the plaintext each envelope is sealed from. */
  private readonly sealing: { key: Buffer; counter: bigint; plaintext: Buffer; topic: string } | undefined;

  constructor(
    private readonly socket: Link,
    private readonly stream: number,
    private readonly setup: WorkerSetup,
  ) {
    const topic = topicOf(setup, stream);
    if (setup.envelope?.seal) {
      const plaintext = Buffer.alloc(Math.max(setup.payloadSize, 16));
      this.sealing = { key: Buffer.from(setup.envelope.keyHex, 'hex'), counter: 1n, plaintext, topic };
      this.template = new PublishTemplate(topic, setup.qos, HEADER_LENGTH + plaintext.length + TAG_LENGTH);
    } else this.template = new PublishTemplate(topic, setup.qos, setup.payloadSize);
    const out: Buffer[] = [];
    this.reader = new FrameReader((first, buf, start) => {
      const type = first >> 4;
      if (type === 4 || type === 7) {
        this.acked++;
        this.inflight--;
      } else if (type === 5) {
        out.push(ack(0x62, buf.readUInt16BE(start))); // PUBREC -> PUBREL
      }
    });
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      if (out.length > 0) {
        socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
        out.length = 0;
      }
      if (this.running && setup.rate === 0) this.fill();
    });
  }

  begin(): void {
    this.running = true;
    if (this.setup.rate > 0) {
      // A fixed rate: every millisecond, what is due since the start.
      const started = performance.now();
      this.rateTimer = setInterval(() => {
        const due = Math.floor(((performance.now() - started) * this.setup.rate) / 1000) - this.sent;
        if (due > 0) this.emit(due);
      }, 1);
    } else this.fill();
  }

  end(): void {
    this.running = false;
    if (this.rateTimer) clearInterval(this.rateTimer);
  }

  /** Tops the window up (QoS 0: `window` messages per write, again once the socket takes more). */
  private fill(): void {
    const room = this.setup.qos === 0 ? this.setup.window : this.setup.window - this.inflight;
    if (room > 0) this.emit(room);
  }

  private emit(count: number): void {
    const len = this.template.length;
    const batch = Buffer.allocUnsafe(len * count);
    const now = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      const sealing = this.sealing;
      if (sealing) {
        const { plaintext } = sealing;
        plaintext.writeUInt32BE(this.stream, 0);
        plaintext.writeUInt32BE(this.sent++, 4);
        plaintext.writeBigUInt64BE(now, 8);
        const envelope = sealEnvelope({ key: sealing.key, keyId: ENVELOPE_KEY_ID, counter: sealing.counter++, topic: sealing.topic, plaintext });
        this.template.writePayload(batch, i * len, id, envelope);
      } else this.template.write(batch, i * len, id, this.stream, this.sent++, now);
    }
    if (this.setup.qos > 0) this.inflight += count;
    else this.acked += count;
    const flushed = this.socket.write(batch);
    if (this.setup.qos === 0 && this.running && this.setup.rate === 0) {
      if (flushed) setImmediate(() => this.running && this.fill());
      else this.socket.once('drain', () => this.running && this.fill());
    }
  }

  get idle(): boolean {
    return this.inflight <= 0;
  }
}

class PublisherSide {
  private publishers: Publisher[] = [];
  private sockets: Link[] = [];

  constructor(private readonly setup: WorkerSetup) {}

  async start(): Promise<void> {
    for (let s = 0; s < this.setup.streams; s++) {
      const { socket } = await open(this.setup, `${this.setup.idPrefix}-pub-${s}`, true);
      this.sockets.push(socket);
      this.publishers.push(new Publisher(socket, s, this.setup));
    }
  }

  begin(): void {
    for (const p of this.publishers) p.begin();
  }

  end(): void {
    for (const p of this.publishers) p.end();
  }

  get counters(): Counters {
    let messages = 0;
    for (const p of this.publishers) messages += p.acked;
    return { messages, missing: 0, duplicates: 0 };
  }

  get idle(): boolean {
    return this.publishers.every((p) => p.idle);
  }

  sentPerStream(): number[] {
    return this.publishers.map((p) => p.sent);
  }

  close(): void {
    for (const s of this.sockets) s.end(DISCONNECT);
  }
}

// ---- the run --------------------------------------------------------------------

let setup: WorkerSetup;
let subscribers: SubscriberSide | undefined;
let publishers: PublisherSide | undefined;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

process.on('message', (command: WorkerCommand) => {
  void (async () => {
    try {
      if (command.type === 'setup') {
        setup = command.setup;
        if (setup.role === 'subscribe') await (subscribers = new SubscriberSide(setup)).start();
        else await (publishers = new PublisherSide(setup)).start();
        send({ type: 'ready' });
      } else if (command.type === 'go') {
        const side = subscribers ?? publishers!;
        publishers?.begin();
        await sleep(command.warmupMs);
        if (subscribers) subscribers.recordLatency = true;
        const first = { ...side.counters };
        const t0 = performance.now();
        await sleep(command.measureMs);
        const last = { ...side.counters };
        const elapsedMs = performance.now() - t0;
        if (subscribers) subscribers.recordLatency = false;
        publishers?.end();
        send({
          type: 'measured',
          window: {
            messages: last.messages - first.messages,
            missing: last.missing - first.missing,
            duplicates: last.duplicates - first.duplicates,
            elapsedMs,
          },
        });
      } else if (command.type === 'finish') {
        // Let what is in flight complete, then report totals for the loss check.
        const deadline = performance.now() + command.drainMs;
        while (publishers && !publishers.idle && performance.now() < deadline) await sleep(10);
        // Subscribers wait until deliveries stop arriving.
        for (let before = -1; subscribers && subscribers.counters.messages !== before && performance.now() < deadline;) {
          before = subscribers.counters.messages;
          await sleep(200);
        }
        send({
          type: 'totals',
          counters: (subscribers ?? publishers!).counters,
          perStream: subscribers ? subscribers.receivedPerStream() : publishers!.sentPerStream(),
          latencies: subscribers ? subscribers.latencySample() : [],
        });
        publishers?.close(); // the runner ends this process once it has the totals (a large reply takes time to send)
      }
    } catch (err) {
      send({ type: 'error', message: (err as Error).stack ?? String(err) });
    }
  })();
});
