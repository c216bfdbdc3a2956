import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { encodePacket, type Packet, type ProtocolVersion, type QoS } from '../../src/protocol/index.js';
import { connectClient, delay, startBroker, waitFor, type TestBroker } from '../helpers/broker.js';

/**
 * Hostile traffic: 50 concurrent raw TCP clients send random bytes and mutated
 * packets (MQTT 3.1, 3.1.1 and 5) while a well-behaved publisher/subscriber pair exchanges
 * sequence-numbered QoS 1 messages. The broker must stay up, lose nothing of
 * the good traffic, and leak no connections, sockets or timers.
 *
 * Reproduce a failure with MOAT_FUZZ_SEED=<seed printed by the test>.
 */

const SEED = Number(process.env.MOAT_FUZZ_SEED ?? 0x6d6f6174);
const HOSTILE_WORKERS = 50;
const FUZZ_MS = 3000;

/** mulberry32: small, fast, seedable. */
class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }
}

const FUZZ_FILTERS = ['#', 'fuzz/#', 'fuzz/+/x', '+', '+/+', 'fuzz/a', '$SYS/#'];

function qos(rng: Rng): QoS {
  return rng.int(0, 2) as QoS;
}

function connectPacket(rng: Rng, id: string, version: ProtocolVersion): Buffer {
  const username = rng.bool(0.3) ? `user-${id}` : undefined;
  const packet: Packet = {
    type: 1,
    protocolName: version === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: version,
    clean: rng.bool(0.9),
    keepalive: rng.int(0, 5),
    clientId: id,
    will: rng.bool(0.4)
      ? { topic: `fuzz/will/${id}`, payload: rng.bytes(rng.int(0, 40)), qos: qos(rng), retain: rng.bool(0.2) }
      : undefined,
    username,
    password: username && rng.bool() ? rng.bytes(rng.int(0, 12)) : undefined,
  };
  return encodePacket(packet, version);
}

/** A valid packet a connected client might send (never to the good topic). */
function sessionPacket(rng: Rng, version: ProtocolVersion): Buffer {
  const packetId = rng.int(1, 65535);
  const kind = rng.int(0, 8);
  let packet: Packet;
  switch (kind) {
    case 0:
    case 1: {
      const q = qos(rng);
      packet = {
        type: 3, dup: false, qos: q, retain: rng.bool(0.1), topic: `fuzz/${rng.pick(['a', 'b', 'c/x'])}`,
        packetId: q > 0 ? packetId : undefined, payload: rng.bytes(rng.int(0, 300)),
      };
      // MQTT 5: topic aliases and properties, valid or not, are part of the hostile mix.
      if (version === 5 && rng.bool(0.5)) {
        packet.properties = rng.bool(0.5)
          ? { topicAlias: rng.int(1, 80), userProperties: [['k', 'v']] }
          : { messageExpiryInterval: rng.int(0, 5), payloadFormatIndicator: rng.int(0, 1), contentType: 'x' };
        if (rng.bool(0.3)) packet.topic = '';
      }
      break;
    }
    case 2:
      packet = { type: 8, packetId, subscriptions: [{ filter: rng.pick(FUZZ_FILTERS), qos: qos(rng) }] };
      break;
    case 3:
      packet = { type: 10, packetId, filters: [rng.pick(FUZZ_FILTERS)] };
      break;
    case 4:
      packet = { type: 4, packetId };
      break;
    case 5:
      packet = { type: rng.pick([5, 6, 7] as const), packetId };
      break;
    case 6:
      packet = version === 5 ? { type: 15, reasonCode: rng.pick([0, 0x18, 0x19]) } : { type: 12 };
      break;
    case 7:
      packet = { type: 12 };
      break;
    default:
      packet = { type: 14 };
      break;
  }
  return encodePacket(packet, version);
}

function flipBits(rng: Rng, bytes: Buffer, flips: number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < flips && out.length > 0; i++) {
    const at = rng.int(0, out.length - 1);
    out[at] = out[at]! ^ (1 << rng.int(0, 7));
  }
  return out;
}

type Kind = 'garbage' | 'connect-then-garbage' | 'flipped' | 'connect-then-flipped' | 'truncated' | 'stalled-connect';
const KINDS: readonly Kind[] = ['garbage', 'connect-then-garbage', 'flipped', 'connect-then-flipped', 'truncated', 'stalled-connect'];

/** The chunks one hostile connection writes, by kind. */
function hostileScript(rng: Rng, kind: Kind, id: string): Buffer[] {
  const version: ProtocolVersion = rng.pick([3, 4, 4, 5, 5] as const);
  const valid = (n: number): Buffer[] => Array.from({ length: n }, () => sessionPacket(rng, version));
  switch (kind) {
    case 'garbage':
      return Array.from({ length: rng.int(1, 3) }, () => rng.bytes(rng.int(1, 2048)));
    case 'connect-then-garbage':
      return [connectPacket(rng, id, version), ...valid(rng.int(0, 3)), rng.bytes(rng.int(1, 1024))];
    case 'flipped': {
      const all = Buffer.concat([connectPacket(rng, id, version), ...valid(rng.int(1, 6))]);
      return [flipBits(rng, all, rng.int(1, 6))];
    }
    case 'connect-then-flipped': {
      const rest = Buffer.concat(valid(rng.int(2, 8)));
      return [connectPacket(rng, id, version), flipBits(rng, rest, rng.int(1, 4))];
    }
    case 'truncated': {
      const packets = [connectPacket(rng, id, version), ...valid(rng.int(0, 4))];
      const all = Buffer.concat(packets);
      const last = packets[packets.length - 1]!;
      // Cut inside the last packet (or anywhere inside the CONNECT when it is the only one).
      const cut = all.length - rng.int(1, Math.max(1, last.length - 1));
      return [all.subarray(0, cut)];
    }
    case 'stalled-connect': {
      const connect = connectPacket(rng, id, version);
      return [connect.subarray(0, rng.int(1, connect.length - 1))];
    }
  }
}

interface HostileStats {
  connections: number;
  byKind: Record<string, number>;
  closedByBroker: number;
}

/** One hostile worker: connection after connection until the deadline. */
async function hostileWorker(port: number, worker: number, deadline: number, sockets: Set<net.Socket>, stats: HostileStats): Promise<void> {
  const rng = new Rng((SEED ^ Math.imul(worker + 1, 0x9e3779b1)) >>> 0);
  let n = 0;
  while (Date.now() < deadline) {
    const kind = rng.pick(KINDS);
    const script = hostileScript(rng, kind, `fuzz-${worker}-${n++}`);
    const ending = rng.pick(['end', 'destroy', 'wait'] as const);
    const pauses = script.map(() => rng.int(0, 20));
    stats.connections++;
    stats.byKind[kind] = (stats.byKind[kind] ?? 0) + 1;

    const socket = net.connect(port, '127.0.0.1');
    sockets.add(socket);
    socket.on('error', () => {});
    socket.resume(); // read and discard whatever the broker sends
    let closed = false;
    const closedPromise = once(socket, 'close').then(() => {
      closed = true;
      sockets.delete(socket);
    });
    try {
      await Promise.race([once(socket, 'connect'), closedPromise]);
      for (let i = 0; i < script.length && !closed; i++) {
        socket.write(script[i]!);
        if (pauses[i]! > 0) await delay(pauses[i]!);
      }
      if (!closed) {
        if (ending === 'end') socket.end();
        else if (ending === 'destroy') socket.destroy();
        else {
          // Wait for the broker to close the connection (protocol error, connect timeout), up to a bound.
          await Promise.race([closedPromise, delay(1200)]);
          if (!closed) socket.destroy();
          else stats.closedByBroker++;
        }
      }
    } catch {
      socket.destroy();
    }
    await Promise.race([closedPromise, delay(1000)]);
    if (!closed) socket.destroy();
    await closedPromise;
  }
}

function countResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

const WATCHED = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout'] as const;

function watched(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(WATCHED.map((k) => [k, counts[k] ?? 0]));
}

describe('broker robustness under hostile traffic', () => {
  it(`[MQTT-4.8.0-1] survives ${HOSTILE_WORKERS} hostile connections while QoS 1 traffic flows complete and in order (seed ${SEED})`, async (t) => {
    t.diagnostic(`fuzz seed ${SEED} (set MOAT_FUZZ_SEED to reproduce)`);
    console.log(`# robustness fuzz seed: ${SEED} (MOAT_FUZZ_SEED=${SEED})`);
    const baseline = watched(countResources());

    let tb: TestBroker | undefined;
    let sub: MqttClient | undefined;
    let pub: MqttClient | undefined;
    const sockets = new Set<net.Socket>();
    try {
      tb = await startBroker({ limits: { connectTimeout: 1, maxPacketSize: 64 * 1024 } });
      const broker = tb.broker;
      let protocolErrors = 0;
      broker.on('clientError', () => protocolErrors++);

      const topic = `robust/good/${SEED.toString(16)}`;
      sub = await connectClient(tb.url, { clientId: `good-sub-${SEED}`, clean: true, keepalive: 30 });
      pub = await connectClient(tb.url, { clientId: `good-pub-${SEED}`, clean: true, keepalive: 30 });
      const goodTrouble: string[] = [];
      for (const [name, client] of [['subscriber', sub], ['publisher', pub]] as const) {
        client.on('close', () => goodTrouble.push(`${name} connection closed`));
        client.on('error', (err) => goodTrouble.push(`${name} error: ${err.message}`));
      }
      await sub.subscribeAsync(topic, { qos: 1 });
      const received: number[] = [];
      const receivedQos: number[] = [];
      sub.on('message', (msgTopic, payload, packet) => {
        if (msgTopic !== topic) return;
        received.push(Number(payload.toString()));
        receivedQos.push(packet.qos);
      });

      const deadline = Date.now() + FUZZ_MS;
      const stats: HostileStats = { connections: 0, byKind: {}, closedByBroker: 0 };
      const workers = Array.from({ length: HOSTILE_WORKERS }, (_, w) => hostileWorker(tb!.port, w, deadline, sockets, stats));

      // The good publisher: up to 10 QoS 1 messages in flight, until the fuzzing ends.
      let sent = 0;
      const publisher = (async () => {
        const inflight = new Set<Promise<unknown>>();
        while (Date.now() < deadline) {
          const seq = sent++;
          const p: Promise<unknown> = pub!.publishAsync(topic, String(seq), { qos: 1 }).finally(() => inflight.delete(p));
          inflight.add(p);
          if (inflight.size >= 10) await Promise.race(inflight);
        }
        await Promise.all(inflight);
      })();

      await Promise.all([publisher, ...workers]);
      for (const s of sockets) s.destroy();
      await waitFor(() => sockets.size === 0, 3000, 'hostile sockets closed');

      t.diagnostic(`hostile connections: ${stats.connections} ${JSON.stringify(stats.byKind)}; closed by broker: ${stats.closedByBroker}; protocol errors: ${protocolErrors}; good messages: ${sent}`);
      assert.ok(stats.connections >= HOSTILE_WORKERS, 'every hostile worker ran');
      assert.ok(protocolErrors > 0, 'the hostile traffic produced protocol errors (the test exercises something)');
      assert.ok(sent >= 100, `the good publisher kept publishing during the attack (${sent} messages)`);

      await waitFor(() => received.length >= sent, 5000, `all ${sent} good messages (got ${received.length})`);
      await delay(100); // any duplicate would show up now
      assert.deepEqual(goodTrouble, []);
      assert.equal(received.length, sent, 'no message lost or duplicated');
      assert.deepEqual(received, Array.from({ length: sent }, (_, i) => i), 'messages in publication order');
      assert.ok(receivedQos.every((q) => q === 1), 'delivered at QoS 1');

      // Only the good clients remain connected.
      await waitFor(() => broker.connections.size === 2, 5000, `connections back to 2 (now ${broker.connections.size})`);
      assert.equal(broker.stats.connectedClients, 2);
      const live = [...broker.sessions.values()].filter((s) => s.connection !== undefined).map((s) => s.clientId).sort();
      assert.deepEqual(live, [`good-pub-${SEED}`, `good-sub-${SEED}`]);
      // Two client sockets and their two broker-side peers.
      assert.equal(watched(countResources()).TCPSocketWrap, baseline.TCPSocketWrap! + 4, 'no hostile socket left open');

      // The broker still works normally afterwards.
      const after = received.length;
      await pub.publishAsync(topic, String(sent), { qos: 1 });
      await waitFor(() => received.length === after + 1, 3000, 'message after the attack');
      assert.equal(received[after], sent);
    } finally {
      for (const s of sockets) s.destroy();
      await Promise.all([sub?.endAsync(), pub?.endAsync()]);
      await tb?.close();
    }

    // Everything closed: no sockets, servers or timers left behind.
    try {
      await waitFor(() => {
        const now = watched(countResources());
        return WATCHED.every((k) => now[k]! <= baseline[k]!);
      }, 3000, 'resources released');
    } catch {
      // fall through to the assertion, which shows the difference
    }
    assert.deepEqual(watched(countResources()), baseline, 'active resources back to the baseline');
  });
});
