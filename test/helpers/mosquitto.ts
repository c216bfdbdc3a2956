import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Broker } from '../../src/index.js';
import type { TestBroker } from './broker.js';
import { run, spawnProc, type Proc } from './process.js';

/** Driving the Eclipse Mosquitto command line clients against a test broker. */
export class MosquittoClients {
  private counter = 0;
  constructor(private readonly tb: () => TestBroker) {}

  /** A client id unique in this file, at most 23 characters (MQTT 3.1's limit). */
  uid(prefix: string): string {
    return `${prefix}${(this.counter++).toString(36)}${randomBytes(3).toString('hex')}`.slice(0, 23);
  }

  base(): string[] {
    return ['-h', '127.0.0.1', '-p', String(this.tb().port)];
  }

  /** Starts mosquitto_sub and waits until the broker has its subscription. */
  async startSub(version: string, clientId: string, args: string[], limitSeconds = 5): Promise<Proc> {
    const subscribed = subscribedBy(this.tb().broker, clientId);
    const proc = spawnProc('mosquitto_sub', [
      ...this.base(), '-V', version, '-i', clientId, '-W', String(limitSeconds), ...args,
    ], { limitMs: (limitSeconds + 3) * 1000 });
    await Promise.race([
      subscribed,
      proc.exited.then((s) => {
        throw new Error(`mosquitto_sub exited early (${JSON.stringify(s)}): ${proc.stderr}`);
      }),
    ]);
    return proc;
  }

  async pub(version: string, args: string[], input?: string | Buffer): Promise<void> {
    const result = await run('mosquitto_pub', [...this.base(), '-V', version, ...args], { limitMs: 8000, input });
    assert.equal(result.code, 0, `mosquitto_pub ${args.join(' ')} failed: ${result.stderr}`);
  }
}

/** Resolves once the broker reports a SUBSCRIBE from `clientId`; listen before spawning the client. */
export function subscribedBy(broker: Broker, clientId: string, timeoutMs = 5000): Promise<void> {
  return brokerEvent(broker, 'subscribe', clientId, timeoutMs).then(() => undefined);
}

/** Resolves with the reason once the broker reports `clientId` disconnected. */
export function disconnectedBy(broker: Broker, clientId: string, timeoutMs = 5000): Promise<string> {
  return brokerEvent(broker, 'clientDisconnected', clientId, timeoutMs).then((args) => String(args[1]));
}

function brokerEvent(broker: Broker, event: 'subscribe' | 'clientDisconnected', clientId: string, timeoutMs: number): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const on = (...args: unknown[]): void => {
      if ((args[0] as { id: string }).id !== clientId) return;
      clearTimeout(timer);
      broker.off(event, on);
      resolve(args);
    };
    const timer = setTimeout(() => {
      broker.off(event, on);
      reject(new Error(`${clientId}: no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    broker.on(event, on);
  });
}

/** Waits for mosquitto_sub to exit by itself (after -C messages) and returns its output lines. */
export async function subLines(proc: Proc): Promise<string[]> {
  const status = await proc.waitExit(8000);
  assert.equal(status.code, 0, `mosquitto_sub exited with ${JSON.stringify(status)}; stdout: ${proc.stdout} stderr: ${proc.stderr}`);
  return proc.stdout.split('\n').filter((l) => l !== '');
}
