import { spawn } from 'node:child_process';
import { freePort } from './brokers.js';
import { pin } from './system.js';

export interface RedisProcess {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** A redis-server of our own on a free port, with the durability the store's promise asks for (`appendfsync always`). */
export async function startRedis(dir: string, cpu?: number): Promise<RedisProcess> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes',
    '--appendfsync', 'always', '--save', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (cpu !== undefined && child.pid !== undefined) pin(child.pid, cpu);
  const deadline = Date.now() + 10_000;
  while (!out.includes('Ready to accept connections')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`redis-server did not start: ${out}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
