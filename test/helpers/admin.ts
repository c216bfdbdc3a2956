import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { freePort, spawnProc, type Proc } from './process.js';

/**
 * A real `moat` with an admin listener, for the admin, API, dashboard, metrics and `moat ctl` tests: users in a
 * password file with their roles, API tokens, one MQTT listener, all on loopback, in a fresh directory.
 */

export const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');
/** Cheap scrypt parameters: the tests log in often. */
const FAST = { logN: 10, r: 8, p: 1 };

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
export const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

export interface AdminBrokerSetup {
  /** Prefix of the temporary directory. */
  prefix: string;
  /** Users of the password file: their password and roles (authorization.users). */
  users: Record<string, { password: string; roles: string[] }>;
  /** Roles, as YAML flow sequences of rules; default: admin (no rules) and device (every topic). */
  roles?: Record<string, string>;
  tokens?: Array<{ name: string; token: string; scopes: string[]; expires?: string }>;
  /** More lines under `admin:` (indented by two spaces), e.g. `metrics_auth: false`. */
  admin?: string[];
  /** More top-level YAML (audit, store, ...); the store is memory unless given. */
  yaml?: string[];
}

export interface AdminBroker {
  dir: string;
  mqttPort: number;
  adminPort: number;
  /** http://127.0.0.1:<admin port> */
  base: string;
  proc: Proc;
}

export async function startAdminBroker(setup: AdminBrokerSetup): Promise<AdminBroker> {
  const dir = mkdtempSync(path.join(tmpdir(), setup.prefix));
  const mqttPort = await freePort();
  const adminPort = await freePort();
  const lines = await Promise.all(Object.entries(setup.users).map(async ([name, u]) => formatEntry(await createEntry(name, Buffer.from(u.password), FAST))));
  writeFileSync(path.join(dir, 'passwords'), `${lines.join('\n')}\n`);
  const roles = setup.roles ?? { admin: '[]', device: '[{ topic: "#" }]' };
  const extra = setup.yaml ?? [];
  writeFileSync(path.join(dir, 'moat.yaml'), [
    'listeners:',
    `  - { name: mqtt, host: 127.0.0.1, port: ${mqttPort} }`,
    'authentication:',
    '  - { type: password_file, path: passwords }',
    'authorization:',
    '  roles:',
    ...Object.entries(roles).map(([name, rules]) => `    ${name}: ${rules}`),
    '  users:',
    ...Object.entries(setup.users).map(([name, u]) => `    ${name}: { roles: [${u.roles.join(', ')}] }`),
    'admin:',
    '  host: 127.0.0.1',
    `  port: ${adminPort}`,
    ...(setup.admin ?? []).map((line) => `  ${line}`),
    ...(setup.tokens && setup.tokens.length > 0 ? ['  tokens:'] : []),
    ...(setup.tokens ?? []).map((t) => `    - { name: ${t.name}, token_sha256: ${sha256(t.token)}, scopes: [${t.scopes.join(', ')}]${t.expires ? `, expires: "${t.expires}"` : ''} }`),
    'log: { format: json, level: info }',
    ...(extra.some((line) => line.startsWith('store:')) ? [] : ['store: { type: memory }']),
    ...extra,
  ].join('\n'));
  const proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 120_000 });
  await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  return { dir, mqttPort, adminPort, base: `http://127.0.0.1:${adminPort}`, proc };
}
