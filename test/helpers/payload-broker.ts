import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { freePort, killAll, spawnProc, type Proc } from './process.js';

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

/**
 * A real `moat` for the payload-encryption tests: users with the password `{user}-pw` in a password file, the
 * `payload_encryption` lines given, JSON logs and a SQLite store, in a directory of its own.
 */
export interface PayloadBroker {
  readonly dir: string;
  readonly port: number;
  /** The running process (replaced by `start`). */
  readonly proc: Proc;
  /** Starts `moat` (again) and waits for "moat started". */
  start(): Promise<void>;
  /** An MQTT 5 client (by default) logged in as `user`. */
  connect(clientId: string, user: string, options?: Partial<IClientOptions>): Promise<MqttClient>;
  /** Ends every client, stops every process, removes the directory. */
  close(): Promise<void>;
}

export async function payloadBroker(prefix: string, users: string[], payloadLines: string[], extra: string[] = []): Promise<PayloadBroker> {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const port = await freePort();
  const entries = await Promise.all(users.map(async (u) => formatEntry(await createEntry(u, Buffer.from(`${u}-pw`), { logN: 10, r: 8, p: 1 }))));
  writeFileSync(path.join(dir, 'passwords'), `${entries.join('\n')}\n`);
  writeFileSync(path.join(dir, 'moat.yaml'), [
    `listeners:\n  - { host: 127.0.0.1, port: ${port} }`,
    'authentication:\n  - { type: password_file, path: passwords }',
    ['payload_encryption:', ...payloadLines.map((line) => `  ${line}`)].join('\n'),
    'log: { format: json }',
    'store: { type: sqlite, directory: data }',
    ...extra,
  ].join('\n'));
  const clients: MqttClient[] = [];
  let proc: Proc | undefined;
  return {
    dir, port,
    get proc() {
      return proc!;
    },
    async start() {
      proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 120_000 });
      await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
    },
    async connect(clientId, user, options = {}) {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId, username: user, password: `${user}-pw`, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...options,
      });
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) client.end(true);
      await killAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
