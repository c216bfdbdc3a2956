import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { connectClient } from './broker.js';
import { freePort, run, spawnProc, type Proc } from './process.js';

/**
 * Encryption at rest against a real `moat` process: messages marked with MARKER in their payload, a user property
 * and correlation data go to an offline persistent session and a retained topic; the store's bytes are searched for
 * the marker; restarts deliver them intact.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

/** 15 characters: its base64 (20 characters, no padding) is a prefix of the base64 of any value starting with it. */
export const MARKER = 'ZebraSecret4242';
export const MARKER_BASE64 = Buffer.from(MARKER).toString('base64');
export const SUBSCRIBER = 'at-rest-offline-subscriber';
const SESSION = { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 3600 } };

/** Where the marker shows in these bytes (as UTF-8 or base64), for the failure message; undefined: nowhere. */
export function markerIn(bytes: Buffer): string | undefined {
  for (const needle of [MARKER, MARKER_BASE64]) {
    const at = bytes.indexOf(needle);
    if (at >= 0) return `"${needle}" at byte ${at}: ${JSON.stringify(bytes.subarray(Math.max(0, at - 40), at + 60).toString('latin1'))}`;
  }
  return undefined;
}

export function keyLine(id: number): string {
  return `${id}:${randomBytes(32).toString('hex')}`;
}

export function writeKeys(file: string, lines: string[]): void {
  writeFileSync(file, `# store keys; the last line seals new records\n${lines.join('\n')}\n`, { mode: 0o600 });
}

export class MoatProcess {
  proc!: Proc;
  port = 0;
  constructor(readonly dir: string, readonly name: string, private readonly storeYaml: string) {}

  get configFile(): string {
    return path.join(this.dir, `${this.name}.yaml`);
  }

  private async writeConfig(): Promise<void> {
    this.port ||= await freePort();
    writeFileSync(this.configFile, `listeners:\n  - port: ${this.port}\nlog:\n  format: json\n${this.storeYaml}`);
  }

  async start(): Promise<void> {
    await this.writeConfig();
    this.proc = spawnProc(process.execPath, [MOAT, '-c', this.configFile], { cwd: this.dir, limitMs: 60_000 });
    await this.proc.waitStdout((out) => out.includes('"moat started"'), 15_000, '"moat started"');
  }

  /** Starts and expects a refusal; returns what it said. */
  async refused(): Promise<string> {
    await this.writeConfig();
    const result = await run(process.execPath, [MOAT, '-c', this.configFile], { cwd: this.dir, limitMs: 15_000 });
    assert.equal(result.code, 1, `the broker should refuse to start: ${JSON.stringify(result)}`);
    return result.stderr;
  }

  async stop(): Promise<void> {
    this.proc.kill('SIGTERM');
    assert.equal((await this.proc.waitExit(10_000)).code, 0, this.proc.stderr);
  }

  /** SIGHUP, then the log line of the rekey pass that followed; returns its counts. */
  async rekeyOnSighup(): Promise<{ queued: number; inflight: number; retained: number; keyId: number }> {
    const before = this.proc.stdout.length;
    this.proc.kill('SIGHUP');
    await this.proc.waitStdout((out) => out.slice(before).includes('"store rekey complete"'), 15_000, '"store rekey complete"');
    const line = this.proc.stdout.slice(before).split('\n').find((l) => l.includes('"store rekey complete"'))!;
    return JSON.parse(line) as { queued: number; inflight: number; retained: number; keyId: number };
  }

  /** `moat store rekey -c` on this broker's configuration. */
  async rekeyOffline(): ReturnType<typeof run> {
    await this.writeConfig();
    return run(process.execPath, [MOAT, 'store', 'rekey', '-c', this.configFile], { cwd: this.dir, limitMs: 20_000 });
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }
}

export function marked(label: string): { payload: string; properties: { userProperties: Record<string, string>; correlationData: Buffer } } {
  return {
    payload: `${MARKER} payload ${label}`,
    properties: { userProperties: { note: `${MARKER} user ${label}` }, correlationData: Buffer.from(`${MARKER} correlation ${label}`) },
  };
}

/** The subscriber's persistent session, subscribed to secret/#, left offline. */
export async function leaveSubscriberOffline(url: string): Promise<void> {
  const client = await connectClient(url, { clientId: SUBSCRIBER, ...SESSION });
  await client.subscribeAsync('secret/#', { qos: 1 });
  await client.endAsync();
}

/** QoS 1 messages with the marker to secret/q/{label} and one retained to secret/retained/{label}. Acknowledged: durable. */
export async function publishMarked(url: string, labels: string[], retainedLabel: string): Promise<void> {
  const client = await connectClient(url, { protocolVersion: 5 });
  for (const label of labels) {
    const { payload, properties } = marked(label);
    await client.publishAsync(`secret/q/${label}`, payload, { qos: 1, properties });
  }
  const { payload, properties } = marked(retainedLabel);
  await client.publishAsync(`secret/retained/${retainedLabel}`, payload, { qos: 1, retain: true, properties });
  await client.endAsync();
}

export interface Received {
  topic: string;
  payload: string;
  note: string | undefined;
  correlation: string | undefined;
}

function receivedOf(topic: string, payload: Buffer, packet: mqtt.IPublishPacket): Received {
  const note = packet.properties?.userProperties?.note;
  return {
    topic, payload: payload.toString(), note: Array.isArray(note) ? note.join() : note,
    correlation: packet.properties?.correlationData?.toString(),
  };
}

function expected(topic: string, label: string): Received {
  const { payload, properties } = marked(label);
  return { topic, payload, note: properties.userProperties.note, correlation: properties.correlationData.toString() };
}

/** What one publishMarked call queues for the subscriber, in order. */
export function published(labels: string[], retainedLabel: string): Received[] {
  return [...labels.map((l) => expected(`secret/q/${l}`, l)), expected(`secret/retained/${retainedLabel}`, retainedLabel)];
}

/** The subscriber comes back and gets exactly these messages, in order, with their properties. */
export async function expectQueued(url: string, want: Received[]): Promise<void> {
  const got: Received[] = [];
  const client = mqtt.connect(url, { clientId: SUBSCRIBER, ...SESSION, reconnectPeriod: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`received ${got.length} of ${want.length}: ${JSON.stringify(got)}`)), 10_000);
      client.on('message', (topic, payload, packet) => {
        got.push(receivedOf(topic, payload, packet));
        if (got.length === want.length) {
          clearTimeout(timer);
          resolve();
        }
      });
      client.on('error', reject);
    });
    assert.deepEqual(got, want);
  } finally {
    await client.endAsync();
  }
}

/** A new subscriber gets the retained message intact. */
export async function expectRetained(url: string, label: string): Promise<void> {
  const client = await connectClient(url, { protocolVersion: 5 });
  try {
    const got = new Promise<Received>((resolve) => client.on('message', (topic, payload, packet) => resolve(receivedOf(topic, payload, packet))));
    await client.subscribeAsync(`secret/retained/${label}`, { qos: 1 });
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no retained message')), 5000));
    assert.deepEqual(await Promise.race([got, timeout]), expected(`secret/retained/${label}`, label));
  } finally {
    await client.endAsync();
  }
}
