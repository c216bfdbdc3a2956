import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SCENARIOS, writeSection } from '../../bench/run.js';
import { COMPARISONS, type CompareReport, type CompareRow } from '../../bench/scenarios/compare.js';
import type { BenchContext, ScenarioReport } from '../../bench/scenarios/context.js';
import type { IdleRow } from '../../bench/scenarios/idle.js';
import { judgeTargets } from '../../bench/scenarios/targets.js';
import { buildLatencyProbe, runNativeLatency } from '../../bench/load/native-latency.js';
import { connectPacket, FrameReader } from '../../bench/lib/frames.js';
import { availableBrokers, startBroker, type BrokerKind } from '../../bench/lib/brokers.js';
import { runLoad } from '../../bench/load/run-load.js';

/**
 * A short run of the benchmark harness against real `moat` processes, so that
 * `npm run bench` cannot rot. It checks that the harness measures and checks,
 * not how fast anything is (figures belong to `npm run bench`).
 */

const quick: BenchContext = { quick: true, rounds: 1, brokerCpu: undefined, loadCpu: undefined, brokers: ['moat'], log: () => {} };

describe('bench harness (smoke run)', () => {
  it('durability: QoS 1 runs for strict, periodic and memory deliver every message once, in order', async () => {
    const report = await SCENARIOS.durability!(quick);
    assert.deepEqual(report.errors, []);
    const rows = report.data as Array<{ mode: string; rate: { median: number }; cpu: { median: number }; missing: number; duplicates: number }>;
    assert.deepEqual(rows.map((r) => r.mode), ['strict', 'periodic', 'memory']);
    for (const row of rows) {
      assert.ok(row.rate.median > 0, `${row.mode}: messages were delivered`);
      assert.ok(row.cpu.median > 0, `${row.mode}: broker CPU was measured`);
      assert.equal(row.missing, 0, `${row.mode}: nothing lost`);
      assert.equal(row.duplicates, 0, `${row.mode}: nothing repeated`);
    }
    assert.match(report.table, /\| `strict` \|/);
  });

  it('p2p-qos1-payload: sealed publishes are opened by the broker and re-encrypted deliveries open at the subscriber, every message once', async () => {
    const report = await SCENARIOS['p2p-qos1-payload']!(quick);
    assert.deepEqual(report.errors, [], 'a payload the broker did not open, or a delivery that does not open, counts as lost');
    const rows = report.data as Array<{ mode: string; rate: { median: number }; cpu: { median: number }; missing: number; duplicates: number }>;
    assert.deepEqual(rows.map((r) => r.mode), ['off', 'not covered', 'decrypt', 'reencrypt', 'off @ 20k/s', 'not covered @ 20k/s', 'decrypt @ 20k/s', 'reencrypt @ 20k/s']);
    for (const row of rows) {
      assert.ok(row.rate.median > 0, `${row.mode}: messages were delivered`);
      assert.ok(row.cpu.median > 0, `${row.mode}: broker CPU was measured`);
      assert.equal(row.missing, 0, `${row.mode}: nothing lost`);
    }
  });

  it('cluster: QoS 0 and 1 pairs across two and three nodes on a real redis-server deliver every QoS 1 message once; Redis CPU measured', async () => {
    const report = await SCENARIOS.cluster!(quick);
    assert.deepEqual(report.errors, []);
    const rows = report.data as Array<{ nodes: string; qos: number; rate: { median: number }; cpu: { median: number }; redisCpu: { median: number }; missing: number; duplicates: number }>;
    assert.deepEqual(rows.map((r) => `${r.qos} ${r.nodes}`), ['0 1 node', '0 2 nodes', '0 3 nodes', '1 1 node', '1 2 nodes', '1 3 nodes', '1 1 node', '1 2 nodes', '1 3 nodes']);
    assert.match(report.table, /\| 1 \| 4,000 msg\/s \| 2 nodes \|/, 'the fixed-rate rows');
    for (const row of rows) {
      assert.ok(row.rate.median > 0, `${row.qos} ${row.nodes}: delivered`);
      assert.ok(row.cpu.median > 0, `${row.qos} ${row.nodes}: the nodes' CPU measured`);
      if (row.nodes !== '1 node') assert.ok(row.redisCpu.median > 0, `${row.qos} ${row.nodes}: every message crossed through Redis`);
      if (row.qos === 1) assert.equal(row.missing, 0, `${row.nodes}: nothing lost at QoS 1`);
      assert.equal(row.duplicates, 0);
    }
  });

  it('cluster-soak: two nodes under a steady QoS 1 flow, their memory and Redis\' sampled, nothing lost', async () => {
    const report = await SCENARIOS['cluster-soak']!(quick);
    assert.deepEqual(report.errors.filter((e) => /lost|duplicates/.test(e)), []);
    const data = report.data as { series: Array<{ process: string; samplesMiB: number[] }>; rate: number };
    assert.deepEqual(data.series.map((s) => s.process), ['node a', 'node b', 'redis-server']);
    for (const s of data.series) assert.ok(s.samplesMiB.length >= 5 && s.samplesMiB.every((m) => m > 1), `${s.process}: RSS sampled`);
    assert.ok(data.rate > 0);
  });

  it('restart: a populated SQLite store and a populated Redis store are recovered and the broker answers', async () => {
    const report = await SCENARIOS.restart!(quick);
    assert.deepEqual(report.errors, []);
    const rows = report.data as Array<{ store: string; ready: { median: number }; rssMiB: { median: number } }>;
    assert.equal(rows.length, 2);
    for (const row of rows) {
      assert.ok(row.ready.median > 0, `${row.store}: time to first CONNACK measured`);
      assert.ok(row.rssMiB.median > 0, `${row.store}: RSS measured`);
    }
  });

  it('side-by-side rows: QoS 0 fan-in and QoS 2 pairs against Moat count every delivery and measure CPU and latency', async () => {
    for (const id of ['fanin-qos0', 'p2p-qos2']) {
      const report = await SCENARIOS[id]!(quick);
      assert.deepEqual(report.errors, [], id);
      const rows = report.data as CompareRow[];
      assert.deepEqual(rows.map((r) => r.broker), ['moat'], id);
      const [moat] = rows;
      assert.ok(moat!.rate.median > 0, `${id}: deliveries counted`);
      assert.ok(moat!.cpu.median > 0, `${id}: broker CPU measured`);
      assert.equal(moat!.duplicates, 0, `${id}: nothing repeated`);
      if (id === 'p2p-qos2') {
        assert.equal(moat!.missing, 0, 'QoS 2: nothing lost');
        assert.ok(moat!.p99.median >= moat!.p50.median && moat!.p50.median > 0, 'latency percentiles measured');
      }
      assert.match(report.table, /\| Moat \|/);
    }
  });

  it('WebSocket rows: the load generator speaks MQTT over ws:// to Moat, Mosquitto and Aedes, each serving WebSockets only on its port', async () => {
    const kinds = (['moat', 'mosquitto', 'aedes'] as BrokerKind[]).filter((k) => availableBrokers().includes(k));
    for (const kind of kinds) {
      const broker = await startBroker(kind, { websocket: true });
      try {
        assert.notEqual((await firstAnswer(broker.port))[0], 0x20, `${kind}: plain MQTT gets no CONNACK on the WebSocket port`);
        for (const qos of kind === 'moat' ? [1, 0] as const : [1] as const) { // QoS 0 only once: its publishers' backlog on a slower broker takes long to drain
          const result = await runLoad({
            port: broker.port, transport: 'ws', brokerPid: broker.pid, idPrefix: `ws-${kind}-${qos}-${process.pid}`,
            publishers: 2, subscribers: qos === 1 ? 2 : 1, wildcard: qos === 0, qos, cleanSubscribers: true, payloadSize: 64,
            window: 16, warmupMs: 100, measureMs: 400,
          });
          assert.ok(result.deliveriesPerSecond > 0, `${kind} QoS ${qos}: deliveries counted`);
          assert.equal(result.duplicates, 0, `${kind} QoS ${qos}: nothing repeated`);
          if (qos === 1) assert.equal(result.missing + result.undelivered, 0, `${kind}: QoS 1 loses nothing`);
        }
      } finally {
        await broker.stop();
      }
    }
    for (const id of ['fanin-qos0', 'p2p-qos1']) {
      const tcp = COMPARISONS.find((d) => d.id === id)!;
      const ws = COMPARISONS.find((d) => d.id === `${id}-ws`)!;
      assert.equal(tcp.transport, undefined, `${id} stays on TCP`);
      assert.equal(ws.transport, 'ws');
      assert.deepEqual(ws.shape, tcp.shape, `${id}-ws: the load of ${id}`);
      assert.deepEqual(ws.brokers, ['moat', 'mosquitto', 'aedes']);
      assert.ok(SCENARIOS[ws.id], `${ws.id} can be run with --only`);
    }
  });

  it('side-by-side row with the second core allowed: Moat and its multi-core mode (CPU summed over the workers)', async () => {
    const report = await SCENARIOS['fanin-qos0-2cores']!(quick);
    assert.deepEqual(report.errors, []);
    const rows = report.data as CompareRow[];
    assert.deepEqual(rows.map((r) => r.broker), ['moat', 'moat-2-workers']);
    for (const row of rows) {
      assert.ok(row.rate.median > 0, `${row.broker}: deliveries counted`);
      assert.ok(row.cpu.median > 0, `${row.broker}: broker CPU measured`);
      assert.equal(row.duplicates, 0, `${row.broker}: nothing repeated`);
    }
    assert.match(report.table, /multi-core mode/);
  });

  it('latency row: measured by the C probe, the machine\'s CPU stalls measured before the rounds and a Node.js relay beside Moat as the floor', async () => {
    const report = await SCENARIOS.latency!(quick) as CompareReport;
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.data.map((r) => r.broker), ['moat', 'node-relay']);
    for (const row of report.data) {
      assert.ok(row.rate.median > 500 && row.rate.median < 1500, `${row.broker}: paced deliveries counted (${row.rate.median}/s)`);
      assert.ok(row.p50.median > 0 && row.p99.median >= row.p50.median, `${row.broker}: latency percentiles measured`);
      assert.ok(row.cpu.median > 0, `${row.broker}: broker CPU sampled over the window`);
      assert.equal(row.missing, 0, `${row.broker}: nothing dropped on loopback at 1,000 msg/s`);
      assert.equal(row.duplicates, 0, `${row.broker}: nothing repeated`);
    }
    const stalls = report.stalls!;
    assert.ok(stalls.cpus.length >= 1, 'one probe per CPU');
    for (const cpu of stalls.cpus) {
      assert.ok(cpu.longestMs > 0 && cpu.longestMs < 500, `the longest gap is a measured time (${cpu.longestMs} ms)`);
      assert.ok(cpu.lostPercent >= 0 && cpu.lostPercent < 100);
    }
    assert.match(report.setup, /latency-probe\.c/);
    assert.match(report.setup, /a process spinning on each CPU lost it/);
    assert.match(report.table, /Node\.js relay, no MQTT work/);
  });

  it('latency probe: a relay that drops every 10th message and repeats every 25th is caught, message by message', async () => {
    const relay = await lossyRelay(10, 25);
    try {
      const result = await runNativeLatency({
        port: relay.port, brokerPid: process.pid, publishers: 1, subscribers: 1, wildcard: false, qos: 0, cleanSubscribers: true,
        // The relay runs in this busy test process: a long drain, not cut short by a quiet spell (a pause of the relay is
        // not a loss), lets the last messages through it before the count.
        payloadSize: 64, window: 1, rate: 1000, warmupMs: 100, measureMs: 500, drainMs: 3000, drainQuietMs: 3000, idPrefix: `lossy-${process.pid}`,
      });
      assert.ok(relay.seen() >= 500, `the probe published at its rate (${relay.seen()} seen)`);
      assert.equal(result.missing, relay.dropped(), 'every dropped message counted as missing');
      assert.equal(result.duplicates, relay.repeated(), 'every repeat counted as a duplicate');
      assert.ok(result.latency.samples > 0 && result.latency.p99 >= result.latency.p50);
    } finally {
      relay.close();
    }
  });

  it('latency probe: a broker that is not there fails the run with the probe\'s own reason', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(runNativeLatency({
      port, brokerPid: process.pid, publishers: 1, subscribers: 1, wildcard: false, qos: 0, cleanSubscribers: true,
      payloadSize: 64, window: 1, rate: 1000, warmupMs: 100, measureMs: 200, drainMs: 100, idPrefix: `refused-${process.pid}`,
    }), /latency probe failed \(exit 1\): latency-probe: connect: Connection refused/);
  });

  it('latency probe: without a C compiler the row fails with a message that says what it needs', async () => {
    const output = path.join(mkdtempSync(path.join(os.tmpdir(), 'moat-probe-')), 'latency-probe');
    await assert.rejects(buildLatencyProbe(output, '/nonexistent/cc'), /needs a C compiler \(set CC, or apt-get install gcc\): \/nonexistent\/cc not found/);
    assert.equal(existsSync(output), false);
  });

  it('idle connections: every connection is held and the broker RSS per connection is measured', async () => {
    const report = await SCENARIOS.idle!(quick);
    assert.deepEqual(report.errors, []);
    const { rows } = report.data as { rows: IdleRow[] };
    const moat = rows.find((r) => r.broker === 'moat');
    assert.ok(moat, 'a Moat row');
    assert.equal(moat.connections, 500);
    assert.equal(moat.failed, 0);
    assert.ok(moat.connectsPerSecond.median > 0);
    assert.ok(Number.isFinite(moat.kibPerConnection.median));
  });

  it('targets: judged from the rows, a miss shown as such', () => {
    const row = (broker: CompareRow['broker'], rate: number, cpu: number, p99: number): CompareRow => {
      const s = (v: number) => ({ median: v, min: v, max: v });
      return { broker, rate: s(rate), cpu: s(cpu), p50: s(p99 / 2), p99: s(p99), max: s(p99), missing: 0, duplicates: 0 };
    };
    const report = (id: string, rows: CompareRow[]): ScenarioReport => ({ id, title: id, setup: '', table: '', errors: [], data: rows });
    const verdicts = judgeTargets([
      report('fanin-qos0', [row('moat', 300_000, 2.0, 9), row('mosquitto', 150_000, 6.0, 9), row('mosquitto-nodelay', 90_000, 1.5, 9), row('aedes', 40_000, 20, 9)]),
      report('p2p-qos1', [row('moat', 100_000, 5, 3.0), row('mosquitto', 50_000, 18, 4.0), row('aedes', 60_000, 20, 1)]),
      report('fanin-qos0-2cores', [row('moat', 500_000, 1.6, 9), row('moat-2-workers', 200_000, 2.5, 9), row('mosquitto', 140_000, 7, 9)]),
    ])!.data as Array<{ target: string; met: boolean | undefined }>;
    const met = (prefix: string) => verdicts.find((v) => v.target.startsWith(prefix))?.met;
    assert.equal(met('QoS 0 fan-in: CPU'), false, 'held to the better Mosquitto configuration (1.5 µs), so 2.0 µs misses');
    assert.equal(met('QoS 1 point-to-point: msg/s'), true);
    assert.equal(met('QoS 1 point-to-point: p99'), true);
    assert.equal(met('fanin-qos0: ≥ 2× Aedes'), true);
    assert.equal(met('p2p-qos1: ≥ 2× Aedes'), false, '100k is less than 2 × 60k');
    assert.equal(met('QoS 0 fan-in with the second core'), false, 'the multi-core mode is judged, not the single process: 200k < 1.5 × 140k');
  });

  it('targets: the latency verdict names the floor measured beside it (the relay\'s p99)', () => {
    const s = (v: number) => ({ median: v, min: v, max: v });
    const row = (broker: CompareRow['broker'], p99: number): CompareRow =>
      ({ broker, rate: s(1000), cpu: s(80), p50: s(0.15), p99: s(p99), max: s(4), missing: 0, duplicates: 0 });
    const latency: CompareReport = {
      id: 'latency', title: 'latency', setup: '', table: '', errors: [], data: [row('moat', 0.9), row('node-relay', 0.8)],
      stalls: { cpus: [] },
    };
    const verdict = (judgeTargets([latency])!.data as Array<{ target: string; against: string; met: boolean }>)
      .find((v) => v.target.startsWith('Latency at 1,000 msg/s'))!;
    assert.equal(verdict.met, false, '0.9 ms misses 0.5 ms whatever the floor');
    assert.equal(verdict.against, '0.5 (Node.js relay, no MQTT work: 0.800)');
  });

  it('writeSection replaces only the text between a scenario\'s markers', () => {
    const report: ScenarioReport = { id: 'x', title: 'X', setup: 'how', table: '| a |\n|---|\n| 1 |', errors: [], data: null };
    const docs = 'intro\n<!-- bench:x -->\nold\n<!-- /bench:x -->\noutro\n';
    const updated = writeSection(docs, report, '2026-01-01');
    assert.ok(updated.startsWith('intro\n<!-- bench:x -->\n_2026-01-01; '));
    assert.ok(updated.includes('how\n\n| a |\n|---|\n| 1 |\n<!-- /bench:x -->\noutro\n'));
    assert.ok(!updated.includes('old'));
    const appended = writeSection('intro\n', report, '2026-01-01');
    assert.ok(appended.includes('## X\n\n<!-- bench:x -->'));
  });
});

/** What a server answers first to a plain MQTT CONNECT (empty if it closes without a word). */
function firstAnswer(port: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(connectPacket(`plain-${process.pid}`, true)));
    const done = (answer: Buffer): void => {
      socket.destroy();
      resolve(answer);
    };
    socket.once('data', done);
    socket.once('close', () => done(Buffer.alloc(0)));
    socket.once('error', () => done(Buffer.alloc(0)));
    socket.setTimeout(3000, () => done(Buffer.alloc(0)));
  });
}

/** A relay like bench/brokers/node-relay-floor.ts that drops every `dropEvery`-th PUBLISH and sends every `repeatEvery`-th twice. */
async function lossyRelay(dropEvery: number, repeatEvery: number): Promise<{ port: number; seen(): number; dropped(): number; repeated(): number; close(): void }> {
  let seen = 0;
  let dropped = 0;
  let repeated = 0;
  const subscribers = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    const reader = new FrameReader((first, buf, start, end) => {
      const type = first >> 4;
      if (type === 1) socket.write(Buffer.from([0x20, 2, 0, 0]));
      else if (type === 8) {
        subscribers.add(socket);
        socket.write(Buffer.from([0x90, 3, buf[start]!, buf[start + 1]!, 0]));
      } else if (type === 3) {
        seen++;
        const packet = Buffer.concat([Buffer.from([first, end - start]), buf.subarray(start, end)]);
        if (seen % dropEvery === 0) {
          dropped++;
          return;
        }
        const copies = seen % repeatEvery === 0 ? 2 : 1;
        repeated += copies - 1;
        for (const s of subscribers) for (let i = 0; i < copies; i++) s.write(packet);
      }
    });
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('close', () => subscribers.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen: () => seen,
    dropped: () => dropped,
    repeated: () => repeated,
    close: () => {
      for (const s of subscribers) s.destroy();
      server.close();
    },
  };
}
