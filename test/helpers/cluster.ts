import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './broker.js';
import { freePort, spawnProc, type Proc } from './process.js';

/** Real processes for the cluster tests: a redis-server of their own and `moat` nodes started from a YAML file. */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

export interface RedisServer {
  proc: Proc;
  port: number;
  url: string;
}

/** A redis-server on a free port, its files (AOF) in `dir`; `args` are added to its command line. */
export async function startRedis(dir: string, args: string[] = [], port?: number): Promise<RedisServer> {
  const at = port ?? (await freePort());
  const proc = spawnProc('redis-server', ['--port', String(at), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', ...args], { limitMs: 300_000 });
  await waitFor(() => proc.stdout.includes('Ready to accept connections') || proc.status !== undefined, 10_000, 'redis-server');
  assert.equal(proc.status, undefined, `redis-server could not start: ${proc.stderr}`);
  return { proc, port: at, url: `redis://127.0.0.1:${at}` };
}

/** Writes `{dir}/{name}.yaml` from its lines and starts `moat` on it; resolves once it says it started. */
export async function startMoat(dir: string, name: string, lines: string[] | undefined, limitMs = 240_000): Promise<Proc> {
  const file = path.join(dir, `${name}.yaml`);
  if (lines) writeFileSync(file, lines.join('\n'));
  const proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs });
  await proc.waitStdout((out) => out.includes('"moat started"'), 20_000, `node ${name} started`);
  return proc;
}

/** Waits until an asynchronous condition (a Redis read) holds. */
export async function eventually(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
