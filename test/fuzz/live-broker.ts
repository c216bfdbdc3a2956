/**
 * Fuzzing the live broker: a real `moat` process is driven over TCP with mutated and random packet
 * streams on many connections at once, while a canary client does QoS 1 round trips on its own
 * connection. `runLiveFuzz` returns a report whose `violations` list is empty when every invariant held:
 *
 * - the process stays up: no exit, nothing on stderr, no log line at error level, no protocol error
 *   saying the codec threw something other than a ProtocolError, exit status 0 on SIGTERM at the end;
 * - every connection the broker must refuse (streams.ts says which and why) is closed by it within
 *   `closeDeadlineMs` of the write that completed the offending bytes; a connection that never finishes
 *   its CONNECT is closed by the CONNECT timeout; a connection the client half-closes is closed back;
 * - the canary loses nothing, receives nothing twice and nothing out of order;
 * - nothing left behind: after the run, the stored sessions and retained messages the fuzz clients
 *   asked for are cleared as a client would clear them, and then the $SYS counters (connected clients,
 *   stored sessions, retained messages) are back to their baseline, the open file descriptors of the
 *   process are back near theirs, and the heap after a forced full collection is back near its own.
 *
 * Nothing runs at import time; everything is bounded in count and time.
 */
import net from 'node:net';
import { PacketDecoder, PacketType, type Packet } from '../../src/protocol/index.js';
import { createEntry, formatEntry } from '../../src/security/password-file.js';
import { BrokerProcess, type StoreKind } from './broker-process.js';
import { Canary, sweepRetained, sweepSessions, SysMonitor, type CanaryReport, type Credentials } from './clients.js';
import { buildCorpus, type Corpus } from './corpus.js';
import { Prng } from './prng.js';
import { buildScript, wantsStoredSession, type AuthPlan, type Script } from './streams.js';

export interface FuzzOptions {
  seed: number;
  /** Stop after this many packets (corpus packets and random blobs). */
  packets: number;
  /** Connections in flight at once. */
  connections: number;
  store: StoreKind;
  /** The `moat` entry point to run (default: this checkout's build). */
  moatPath?: string;
  /** Hard limit on the fuzzing phase (the checks after it have their own bounds). */
  maxDurationMs: number;
  /** A connection that must be refused is closed within this (default 5 s). */
  closeDeadlineMs?: number;
  /** The broker's CONNECT timeout, seconds (default 2). */
  connectTimeout?: number;
  /** Run only this script (replay of one connection of a failed run). */
  onlyScript?: number;
  /** Stop fuzzing after this many violations (default 5). */
  maxViolations?: number;
  /** Called every second or so with the figures so far. */
  progress?: (report: FuzzReport) => void;
  /**
   * Fuzz an authenticated broker: a password file, the guard (on with it) and topic permissions; the canary,
   * the $SYS monitor and the sweeper connect from 127.0.0.1 with valid credentials, the fuzz clients from other
   * loopback addresses with right, wrong and made-up ones (streams.ts, AuthPlan).
   */
  auth?: boolean;
}

export interface Violation {
  what: string;
  script?: number;
  detail?: string;
  /** The script's bytes (hex, first 2 KiB), for a failure tied to one connection. */
  bytes?: string;
}

export interface FuzzReport {
  seed: number;
  store: StoreKind;
  packets: number;
  bytes: number;
  scripts: number;
  durationMs: number;
  packetsPerSecond: number;
  connections: {
    opened: number;
    /** Closed by the broker (FIN or reset before the client ended the connection). */
    closedByBroker: number;
    closedByClient: number;
    /** Connections the broker had to refuse, and how many it did close in time. */
    mustClose: number;
    mustCloseClosed: number;
    mustCloseByMutation: number;
    maxCloseLatencyMs: number;
    /** Connections left silent inside CONNECT, closed by the CONNECT timeout. */
    connectTimeouts: number;
    connectErrors: number;
  };
  sweep: { sessions: number; retained: number };
  canary: CanaryReport;
  fd: { before: number; after: number };
  /** Reported, not judged: freed memory stays with the allocator (docs/fuzzing.md). */
  rssBytes: { before: number; peak: number; after: number };
  /** `$SYS/broker/heap/current` after a forced full collection. */
  heapBytes: { before: number; after: number; limit: number };
  /** Buffers outside the heap (`process.memoryUsage().arrayBuffers`) after the same collection. */
  arrayBufferBytes: { before: number; after: number; limit: number };
  sys: { before: Record<string, number | undefined>; after: Record<string, number | undefined> };
  /** Authenticated runs: the guard's $SYS counters after the run (before it they are 0) and the audit lines by event. */
  auth?: { security: Record<string, number | undefined>; audit: Record<string, number> };
  log: { lines: number; protocolErrorKinds: Array<[string, number]>; messages: Array<[string, number]> };
  exit?: { code: number | null; signal: string | null };
  /** Wall time of each phase: start-up and baseline, fuzzing, sweeping, final checks and stop. */
  phasesMs: Record<string, number>;
  violations: Violation[];
}

const SYS_KEYS = ['clients/connected', 'clients/disconnected', 'retained messages/count', 'subscriptions/count'];
const SECURITY_KEYS = [
  'bans/issued', 'bans/active', 'bans/flapping', 'authentication/failures', 'authentication/delayed', 'refused/accept', 'refused/connect',
  'connections/limited',
];
const AUDIT_EVENTS = ['connect.accepted', 'connect.refused', 'connect.anonymous', 'guard.banned', 'publish.refused', 'subscribe.refused', 'will.refused'];

/** The cost of the fuzz password file's scrypt hashes (N = 2^8): the fuzzer is after the protocol, not the hashing. */
const AUTH_LOG_N = 8;

interface AuthSetup {
  passwords: string;
  yaml: string;
  plan: AuthPlan;
  canary: Credentials;
  monitor: Credentials;
  sweeper: Credentials;
}

/**
 * The password file and configuration of an authenticated run. Operators (canary, monitor, sweeper) may do
 * anything, $SYS included; fuzz users 0-3 may publish and subscribe anywhere, 4-7 only as a device role allows
 * (their own `devices/%c/#`, elsewhere subscribe and publish at QoS 1 at most without retain, never under
 * `private/`). Flapping bans last 2 s, so the sweeper can end a banned Client Identifier's stored session.
 */
async function authSetup(): Promise<AuthSetup> {
  const users = Array.from({ length: 8 }, (_, i) => ({ username: `fuzz-user-${i}`, password: `fuzz-password-${i}` }));
  const operators = ['fuzz-canary', 'fuzz-monitor', 'fuzz-sweeper'].map((username) => ({ username, password: `${username}-password` }));
  const victims = ['fuzz-victim-0', 'fuzz-victim-1'];
  const everyone = [...operators, ...users, ...victims.map((username) => ({ username, password: `${username}-secret-nobody-sends` }))];
  const entries = await Promise.all(everyone.map((u) => createEntry(u.username, Buffer.from(u.password), { logN: AUTH_LOG_N, r: 8, p: 1 })));
  const credentials = (i: number): Credentials => ({ username: operators[i]!.username, password: Buffer.from(operators[i]!.password) });
  const yaml = [
    'authentication:',
    '  - type: password_file',
    '    path: passwords',
    'guard:',
    '  flapping: { ban: 2 }',
    'authorization:',
    '  roles:',
    '    operator:',
    "      - { topic: '#', actions: [publish, subscribe] }",
    "      - { topic: '$SYS/#', actions: [subscribe] }",
    '    anywhere:',
    "      - { topic: '#', actions: [publish, subscribe] }",
    '    device:',
    "      - { topic: 'devices/%c/#', actions: [publish, subscribe] }",
    "      - { topic: 'private/#', effect: deny }",
    "      - { topic: '#', actions: [subscribe], max_qos: 1 }",
    "      - { topic: '#', actions: [publish], max_qos: 1, retain: false }",
    '  users:',
    ...operators.map((u) => `    ${u.username}: { roles: [operator] }`),
    ...users.map((u, i) => `    ${u.username}: { roles: [${i < 4 ? 'anywhere' : 'device'}] }`),
  ].join('\n');
  return {
    passwords: `${entries.map(formatEntry).join('\n')}\n`, yaml, plan: { users, victims },
    canary: credentials(0), monitor: credentials(1), sweeper: credentials(2),
  };
}

export const DEFAULT_MAX_PACKET_SIZE = 1_048_576;
/** Heap allowed above the baseline after the run, both measured after a full collection. */
export const HEAP_SLACK_BYTES = 8 * 1024 * 1024;
/**
 * Authenticated runs: what the guard may keep, by design and bounded, for each accepted CONNECT: the addresses
 * that proved a user name and a client identifier (their owners, never slowed down; remembered 30 days, at most
 * 100,000 of each) and the minute's flapping window. Measured: 45,028 accepted CONNECTs left 23.5 MiB with the
 * guard on, 1 MiB with it off; a leaked connection or session costs far more than this.
 */
export const GUARD_BYTES_PER_ACCEPTED = 640;
/** File descriptors allowed above the baseline after the run (the store may have opened a WAL). */
export const FD_SLACK = 3;

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function readSys(monitor: SysMonitor): Record<string, number | undefined> {
  return Object.fromEntries(SYS_KEYS.map((k) => [k, monitor.number(k)]));
}

/**
 * Memory after a forced full collection: the heap as $SYS reports it (the lowest of the readings that
 * follow each collection) and the Buffers outside the heap as the collection's own report gives them.
 */
async function settledMemory(broker: BrokerProcess, monitor: SysMonitor, rounds = 2): Promise<{ heap: number; arrayBuffers: number }> {
  let heap = Infinity;
  let arrayBuffers = Infinity;
  for (let i = 0; i < rounds; i++) {
    const reports = broker.memoryReports;
    broker.collectGarbage();
    await monitor.nextRounds(2, 5000);
    heap = Math.min(heap, monitor.number('heap/current') ?? Infinity);
    if (broker.memoryReports > reports && broker.memory) arrayBuffers = Math.min(arrayBuffers, broker.memory.arrayBuffers);
  }
  if (arrayBuffers === Infinity) throw new Error('the broker did not report its memory after a forced collection (gc-on-signal.js preloaded?)');
  return { heap, arrayBuffers };
}

interface ConnectionOutcome {
  closedByBroker: boolean;
  closeLatencyMs?: number;
  violation?: string;
  storedSession?: string;
}

/** Plays one script on a fresh connection and judges how the broker ended it. */
function playScript(port: number, script: Script, options: Required<Pick<FuzzOptions, 'closeDeadlineMs' | 'connectTimeout'>>): Promise<ConnectionOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, ...(script.localAddress !== undefined && { localAddress: script.localAddress }) });
    socket.setNoDelay(true);
    let clientEnded = false;
    let brokerClosedAt: number | undefined;
    let closed = false;
    let settled = false;
    let mustCloseFrom: number | undefined;
    let storedSession: string | undefined;
    const timers = new Set<NodeJS.Timeout>();
    const later = (ms: number, fn: () => void): NodeJS.Timeout => {
      const t = setTimeout(() => {
        timers.delete(t);
        fn();
      }, ms);
      timers.add(t);
      return t;
    };
    // A stored session is swept after the run by its Client Identifier; an MQTT 5 client that sent an
    // empty one learns it from the CONNACK only, so that connection is not ended before the CONNACK.
    const stored = script.connect !== undefined && wantsStoredSession(script.connect);
    if (stored && script.connect!.clientId !== '') storedSession = script.connect!.clientId;
    let needConnack = stored && script.connect!.clientId === '';
    let connackSeen: () => void = () => {};
    const finish = (outcome: ConnectionOutcome): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      socket.destroy();
      if (storedSession !== undefined) outcome.storedSession = storedSession;
      resolve(outcome);
    };
    const brokerClosed = (): void => {
      if (!clientEnded && brokerClosedAt === undefined) brokerClosedAt = performance.now();
    };
    // The first packet back: a CONNACK that accepts a stored session leaves something to sweep.
    const incoming = new PacketDecoder();
    incoming.version = script.connect?.protocolVersion ?? 4;
    let first = true;
    socket.on('data', (chunk: Buffer) => {
      if (!first || !script.connect) return;
      incoming.push(chunk, (p: Packet) => {
        first = false;
        if (needConnack && p.type === PacketType.CONNACK && p.returnCode === 0) storedSession = p.properties?.assignedClientIdentifier;
        needConnack = false;
        connackSeen();
        return false;
      });
    });
    socket.on('end', brokerClosed);
    socket.on('error', brokerClosed);
    socket.on('close', () => {
      brokerClosed();
      closed = true;
      onClosed();
    });
    let onClosed = (): void => {};
    const afterWrites = (): void => {
      if (script.mustClose) {
        const from = mustCloseFrom ?? performance.now();
        const check = (): void => {
          if (closed || brokerClosedAt !== undefined) {
            finish({ closedByBroker: true, closeLatencyMs: Math.max(0, (brokerClosedAt ?? performance.now()) - from) });
          }
        };
        onClosed = check;
        socket.on('end', check);
        check();
        later(options.closeDeadlineMs, () => finish({
          closedByBroker: false,
          violation: `connection still open ${options.closeDeadlineMs} ms after ${script.mustClose!.reason} (${script.mustClose!.source})`,
        }));
        return;
      }
      if (script.awaitConnectTimeout) {
        const from = performance.now();
        const limit = options.connectTimeout * 1000 + options.closeDeadlineMs;
        onClosed = () => finish({ closedByBroker: true, closeLatencyMs: performance.now() - from });
        if (closed) onClosed();
        later(limit, () => finish({ closedByBroker: false, violation: `incomplete CONNECT: connection still open ${limit} ms later (CONNECT timeout ${options.connectTimeout} s)` }));
        return;
      }
      if (needConnack && !closed && brokerClosedAt === undefined) {
        const then = (): void => {
          clearTimeout(noConnack);
          timers.delete(noConnack);
          afterWrites();
        };
        connackSeen = then;
        onClosed = then;
        const noConnack = later(options.closeDeadlineMs, () => finish({ closedByBroker: false, violation: `no CONNACK within ${options.closeDeadlineMs} ms for a CONNECT with an empty Client Identifier` }));
        return;
      }
      connackSeen = () => {};
      later(script.lingerMs, () => {
        if (closed || brokerClosedAt !== undefined) return finish({ closedByBroker: true });
        clientEnded = true;
        if (script.ending === 'destroy') return finish({ closedByBroker: false });
        // FIN: the broker must close its side too, or the socket stays behind.
        socket.end();
        onClosed = () => finish({ closedByBroker: false });
        later(options.closeDeadlineMs, () => finish({ closedByBroker: false, violation: `the broker did not close a connection the client half-closed (FIN) within ${options.closeDeadlineMs} ms` }));
      });
    };
    let i = 0;
    const writeNext = (): void => {
      if (settled) return;
      if (closed || brokerClosedAt !== undefined || i >= script.chunks.length) {
        afterWrites();
        return;
      }
      const index = i++;
      socket.write(script.chunks[index]!, () => {
        if (script.mustClose && index === script.mustClose.afterChunk) mustCloseFrom = performance.now();
      });
      const gap = script.gaps[i] ?? -1;
      if (i >= script.chunks.length) {
        // Wait for the last write to be handed to the kernel before judging; a connection the broker closes
        // first (a banned address is closed as it arrives) never drains, and is judged once closed.
        if (socket.writableNeedDrain) {
          let resumed = false;
          const resume = (): void => {
            if (resumed) return;
            resumed = true;
            writeNext();
          };
          socket.once('drain', resume);
          onClosed = resume;
        } else setImmediate(writeNext);
      } else if (gap < 0) writeNext();
      else if (gap === 0) setImmediate(writeNext);
      else later(gap, writeNext);
    };
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      writeNext();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (connected) return;
      finish({ closedByBroker: false, violation: `connect failed: ${err.code ?? err.message}` });
    });
  });
}

function emptyReport(options: FuzzOptions): FuzzReport {
  return {
    seed: options.seed, store: options.store, packets: 0, bytes: 0, scripts: 0, durationMs: 0, packetsPerSecond: 0,
    connections: { opened: 0, closedByBroker: 0, closedByClient: 0, mustClose: 0, mustCloseClosed: 0, mustCloseByMutation: 0, maxCloseLatencyMs: 0, connectTimeouts: 0, connectErrors: 0 },
    sweep: { sessions: 0, retained: 0 },
    canary: { roundTrips: 0, maxRoundTripMs: 0, failures: [] },
    fd: { before: 0, after: 0 }, rssBytes: { before: 0, peak: 0, after: 0 }, heapBytes: { before: 0, after: 0, limit: 0 }, arrayBufferBytes: { before: 0, after: 0, limit: 0 },
    sys: { before: {}, after: {} }, log: { lines: 0, protocolErrorKinds: [], messages: [] }, phasesMs: {}, violations: [],
  };
}

/** The corpus for a seed is the same every time; building it takes a moment, so it is kept. */
const corpora = new Map<number, Corpus>();
function corpusFor(seed: number): Corpus {
  let corpus = corpora.get(seed);
  if (!corpus) {
    corpus = buildCorpus({ seed });
    corpora.set(seed, corpus);
  }
  return corpus;
}

export async function runLiveFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const closeDeadlineMs = options.closeDeadlineMs ?? 5000;
  const connectTimeout = options.connectTimeout ?? 2;
  const maxViolations = options.maxViolations ?? 5;
  const report = emptyReport(options);
  const violate = (v: Violation): void => {
    if (report.violations.length < 50) report.violations.push(v);
  };
  const tag = options.seed.toString(36);
  let phaseStart = performance.now();
  const phase = (name: string): void => {
    const now = performance.now();
    report.phasesMs[name] = Math.round(now - phaseStart);
    phaseStart = now;
  };
  const corpus = corpusFor(options.seed);
  const master = new Prng(options.seed);
  phase('corpus');

  const auth = options.auth ? await authSetup() : undefined;
  const broker = await BrokerProcess.start({
    store: options.store, moatPath: options.moatPath, connectTimeout, limitMs: options.maxDurationMs + 180_000,
    ...(auth && { auth: { passwords: auth.passwords, yaml: auth.yaml } }),
  });
  let monitor: SysMonitor | undefined;
  let canary: Canary | undefined;
  try {
    monitor = await SysMonitor.start(broker.port, tag, auth?.monitor);
    canary = await Canary.start(broker.port, tag, closeDeadlineMs, auth?.canary);
    await monitor.nextRounds(2, 5000);
    const memoryBefore = await settledMemory(broker, monitor);
    report.heapBytes.before = memoryBefore.heap;
    report.arrayBufferBytes.before = memoryBefore.arrayBuffers;
    report.sys.before = readSys(monitor);
    report.fd.before = broker.fdCount();
    report.rssBytes.before = broker.rss();

    phase('start and baseline');
    // ---------------------------------------------------------------- fuzzing
    const started = performance.now();
    const storedSessions = new Set<string>();
    let inFlight = 0;
    let stop = false;
    let lastProgress = started;
    await new Promise<void>((done) => {
      const launch = (): void => {
        while (!stop && inFlight < options.connections) {
          if (report.packets >= options.packets || performance.now() - started > options.maxDurationMs
            || report.violations.length >= maxViolations || !broker.running || (canary && canary.report.failures.length > 0)) {
            stop = true;
            break;
          }
          const index = report.scripts++;
          const script = buildScript(index, corpus, master.fork(), { maxPacketSize: DEFAULT_MAX_PACKET_SIZE, tag, ...(auth && { auth: auth.plan }) });
          if (options.onlyScript !== undefined && index !== options.onlyScript) {
            if (index > options.onlyScript) stop = true;
            continue;
          }
          report.packets += script.packets;
          for (const c of script.chunks) report.bytes += c.length;
          report.connections.opened++;
          if (script.mustClose) {
            report.connections.mustClose++;
            if (script.mustClose.source === 'mutation') report.connections.mustCloseByMutation++;
          }
          inFlight++;
          void playScript(broker.port, script, { closeDeadlineMs, connectTimeout }).then((outcome) => {
            inFlight--;
            if (outcome.closedByBroker) report.connections.closedByBroker++;
            else report.connections.closedByClient++;
            if (script.mustClose && outcome.closedByBroker) {
              report.connections.mustCloseClosed++;
              report.connections.maxCloseLatencyMs = Math.max(report.connections.maxCloseLatencyMs, outcome.closeLatencyMs ?? 0);
            }
            if (script.awaitConnectTimeout && outcome.closedByBroker) report.connections.connectTimeouts++;
            if (outcome.storedSession !== undefined) storedSessions.add(outcome.storedSession);
            if (outcome.violation && !broker.running) {
              // The broker is gone: its exit is the finding, not each connection it can no longer take.
            } else if (outcome.violation) {
              if (outcome.violation.startsWith('connect failed')) report.connections.connectErrors++;
              violate({
                what: outcome.violation, script: script.index, detail: script.notes.join('; '),
                bytes: Buffer.concat(script.chunks).subarray(0, 2048).toString('hex'),
              });
            }
            const now = performance.now();
            if (options.progress && now - lastProgress > 1000) {
              lastProgress = now;
              report.durationMs = now - started;
              report.packetsPerSecond = Math.round(report.packets / (report.durationMs / 1000));
              options.progress(report);
            }
            launch();
          });
        }
        if (stop && inFlight === 0) done();
      };
      launch();
    });
    report.durationMs = performance.now() - started;
    report.packetsPerSecond = Math.round(report.packets / (report.durationMs / 1000));
    if (!broker.running) {
      report.violations.unshift({ what: `the broker exited during the run (${JSON.stringify(broker.exit)})`, detail: broker.stderr.slice(0, 4000) });
      return report;
    }

    phase('fuzz');
    // ---------------------------------------------------------------- what was left behind
    const sessions = await sweepSessions(broker.port, storedSessions, 16, auth?.sweeper);
    report.sweep.sessions = sessions.swept;
    for (const f of sessions.failed.slice(0, 5)) violate({ what: 'a stored session could not be taken over to end it', detail: f });
    report.sweep.retained = await sweepRetained(broker.port, tag, 300, 15_000, auth?.sweeper);
    report.canary = await canary.stop();
    canary = undefined;
    for (const f of report.canary.failures) violate({ what: `canary: ${f}` });
    phase('sweep');

    const memoryAfter = await settledMemory(broker, monitor);
    report.heapBytes.after = memoryAfter.heap;
    const guardBytes = auth ? GUARD_BYTES_PER_ACCEPTED * (broker.log.messages.get('connect.accepted') ?? 0) : 0;
    report.heapBytes.limit = report.heapBytes.before + HEAP_SLACK_BYTES + guardBytes;
    if (report.heapBytes.after > report.heapBytes.limit) {
      const guard = auth ? ` and ${mib(guardBytes)} for what the guard remembers of the accepted CONNECTs` : '';
      violate({ what: `heap after a full collection is ${mib(report.heapBytes.after)}, baseline ${mib(report.heapBytes.before)} (allowed ${mib(HEAP_SLACK_BYTES)} more${guard})` });
    }
    report.arrayBufferBytes.after = memoryAfter.arrayBuffers;
    report.arrayBufferBytes.limit = report.arrayBufferBytes.before + HEAP_SLACK_BYTES;
    if (report.arrayBufferBytes.after > report.arrayBufferBytes.limit) {
      violate({ what: `Buffers outside the heap after a full collection: ${mib(report.arrayBufferBytes.after)}, baseline ${mib(report.arrayBufferBytes.before)} (allowed ${mib(HEAP_SLACK_BYTES)} more)` });
    }
    report.sys.after = readSys(monitor);
    if (auth) {
      report.auth = {
        security: Object.fromEntries(SECURITY_KEYS.map((k) => [k, monitor!.number(`security/${k}`)])),
        audit: Object.fromEntries(AUDIT_EVENTS.map((e) => [e, broker.log.messages.get(e) ?? 0])),
      };
    }
    const expectSys = (key: string, expected: number | undefined, what: string): void => {
      const actual = report.sys.after[key];
      if (actual !== expected) violate({ what: `$SYS/broker/${key} is ${actual} after the run, ${expected} before: ${what}` });
    };
    // The canary has gone: one client fewer, and its one subscription.
    expectSys('clients/connected', (report.sys.before['clients/connected'] ?? 0) - 1, 'connections left behind');
    expectSys('clients/disconnected', report.sys.before['clients/disconnected'], 'stored sessions left behind');
    expectSys('retained messages/count', report.sys.before['retained messages/count'], 'retained messages left behind');
    expectSys('subscriptions/count', (report.sys.before['subscriptions/count'] ?? 0) - 1, 'subscriptions left behind');

    const fdDeadline = Date.now() + 10_000;
    let fd = broker.fdCount();
    while (fd > report.fd.before - 1 + FD_SLACK && Date.now() < fdDeadline) {
      await delay(100);
      fd = broker.fdCount();
    }
    report.fd.after = fd;
    // The canary's socket is gone too: the baseline less one, plus the slack.
    if (fd > report.fd.before - 1 + FD_SLACK) violate({ what: `${fd} file descriptors open after the run, ${report.fd.before} before (sockets left behind?)` });
    report.rssBytes.after = broker.rss();
    report.rssBytes.peak = broker.rss('VmHWM');
  } catch (err) {
    violate({ what: `the run stopped: ${(err as Error).message}`, detail: broker.stderr.slice(0, 4000) });
  } finally {
    if (canary) await canary.stop().catch(() => undefined);
    if (monitor) await monitor.close().catch(() => undefined);
    const wasRunning = broker.running;
    const exit = await broker.stop();
    report.exit = exit;
    phase('checks and stop');
    if (wasRunning && (exit.code !== 0 || exit.signal !== null)) violate({ what: `exit status on SIGTERM: ${JSON.stringify(exit)}`, detail: broker.stderr.slice(0, 4000) });
    if (broker.stderr.trim() !== '') violate({ what: 'the broker wrote to stderr', detail: broker.stderr.slice(0, 4000) });
    if (broker.log.errorCount > 0) violate({ what: `${broker.log.errorCount} log lines at error level or above`, detail: broker.log.errors.join('\n') });
    for (const u of broker.log.undecodable) violate({ what: 'the codec threw something other than a ProtocolError', detail: u });
    report.log = {
      lines: broker.log.lines,
      protocolErrorKinds: [...broker.log.protocolErrors].sort((a, b) => b[1] - a[1]),
      messages: [...broker.log.messages].sort((a, b) => b[1] - a[1]),
    };
  }
  return report;
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** A few lines for a person: the figures of a run. */
export function summarize(r: FuzzReport): string {
  const c = r.connections;
  return [
    `seed ${r.seed}, store ${r.store}: ${r.packets} packets (${(r.bytes / 1024 / 1024).toFixed(1)} MiB) on ${c.opened} connections in ${(r.durationMs / 1000).toFixed(1)} s, ${r.packetsPerSecond} packets/s`,
    `connections closed by the broker ${c.closedByBroker}, by the client ${c.closedByClient}; must be refused ${c.mustClose} (${c.mustCloseByMutation} by the mutation's rule), closed in time ${c.mustCloseClosed}, slowest ${c.maxCloseLatencyMs.toFixed(0)} ms; CONNECT timeouts ${c.connectTimeouts}`,
    `canary ${r.canary.roundTrips} QoS 1 round trips, slowest ${r.canary.maxRoundTripMs.toFixed(0)} ms, ${r.canary.failures.length} failures`,
    `swept ${r.sweep.sessions} stored sessions and ${r.sweep.retained} retained messages`,
    `fd ${r.fd.before} → ${r.fd.after}; RSS ${mib(r.rssBytes.before)} → ${mib(r.rssBytes.after)} (peak ${mib(r.rssBytes.peak)}); after a full GC: heap ${mib(r.heapBytes.before)} → ${mib(r.heapBytes.after)}, Buffers ${(r.arrayBufferBytes.before / 1024).toFixed(0)} KiB → ${(r.arrayBufferBytes.after / 1024).toFixed(0)} KiB`,
    `$SYS before ${JSON.stringify(r.sys.before)} after ${JSON.stringify(r.sys.after)}`,
    ...(r.auth ? [`authenticated: $SYS/broker/security after ${JSON.stringify(r.auth.security)}; audit ${JSON.stringify(r.auth.audit)}`] : []),
    `log lines by message: ${r.log.messages.slice(0, 6).map(([k, n]) => `${n}× ${k}`).join(' | ')}`,
    `exit ${JSON.stringify(r.exit)}; ${r.log.lines} log lines; protocol errors: ${r.log.protocolErrorKinds.slice(0, 8).map(([k, n]) => `${n}× ${k}`).join(' | ')}`,
    `phases (ms): ${JSON.stringify(r.phasesMs)}`,
    r.violations.length === 0 ? 'no violations' : `${r.violations.length} VIOLATIONS:\n${r.violations.map((v) => `  - ${v.what}${v.script !== undefined ? ` (script ${v.script})` : ''}${v.detail ? `\n      ${v.detail.slice(0, 600)}` : ''}${v.bytes ? `\n      bytes ${v.bytes.slice(0, 400)}` : ''}`).join('\n')}`,
  ].join('\n');
}
