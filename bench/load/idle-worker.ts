/**
 * Idle-connection load (forked by bench/scenarios/idle.ts): opens `count` MQTT
 * connections, beyond the first PER_ADDRESS from further 127.0.0.x source addresses
 * (one address has ~28,000 ephemeral ports and connect() takes the even half first;
 * each run takes other addresses, so ports a previous run left in TIME_WAIT do not
 * slow it down), each waiting for its CONNACK, `parallel` at a time; then holds them
 * open and idle until told to close.
 */
import net from 'node:net';
import { connectPacket, DISCONNECT } from '../lib/frames.js';
import { PER_ADDRESS } from './protocol.js';

export type IdleCommand = { type: 'open'; port: number; from: number; count: number; parallel: number; idPrefix: string; firstAddress: number } | { type: 'close' };
export type IdleReply = { type: 'opened'; connected: number; failed: number; elapsedMs: number; firstError?: string } | { type: 'closed' };

const sockets: net.Socket[] = [];

function open(port: number, index: number, idPrefix: string, firstAddress: number): Promise<void> {
  // The first block lets connect() choose the source; beyond, each connection binds to another address first.
  const block = Math.floor(index / PER_ADDRESS);
  const localAddress = block === 0 ? undefined : `127.0.0.${firstAddress + block - 1}`;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    socket.once('error', reject);
    socket.once('connect', () => socket.write(connectPacket(`${idPrefix}-${index}`, true, 0)));
    socket.once('data', (chunk) => {
      if (chunk[0] !== 0x20 || chunk[3] !== 0) return reject(new Error(`CONNACK refused: ${chunk.toString('hex')}`));
      socket.off('error', reject);
      socket.on('error', () => {});
      sockets.push(socket);
      resolve();
    });
  });
}

process.on('message', (command: IdleCommand) => {
  void (async () => {
    if (command.type === 'open') {
      const started = performance.now();
      const end = command.from + command.count;
      const held = sockets.length;
      let next = command.from;
      let failed = 0;
      let firstError: string | undefined;
      const lane = async (): Promise<void> => {
        while (next < end) {
          const index = next++;
          try {
            await open(command.port, index, command.idPrefix, command.firstAddress);
          } catch (err) {
            failed++;
            firstError ??= (err as Error).message;
          }
        }
      };
      await Promise.all(Array.from({ length: command.parallel }, lane));
      const reply: IdleReply = { type: 'opened', connected: sockets.length - held, failed, elapsedMs: performance.now() - started, firstError };
      process.send!(reply);
    } else {
      for (const socket of sockets) socket.end(DISCONNECT);
      process.send!({ type: 'closed' } satisfies IdleReply);
      setTimeout(() => process.exit(0), 200);
    }
  })();
});
