/**
 * TLS connection load (forked by bench/scenarios/tls.ts): for `durationMs`, `parallel`
 * lanes each open a TLS connection, send CONNECT, wait for CONNACK and close, over and
 * over. `resume` offers the TLS session of an earlier connection (a resumed, abbreviated
 * handshake) instead of a full one; `reused` counts the handshakes the server did resume.
 */
import tls from 'node:tls';
import { connectPacket, DISCONNECT } from '../lib/frames.js';

export type TlsCommand = { type: 'run'; port: number; parallel: number; durationMs: number; resume: boolean };
export type TlsReply = { type: 'done'; connects: number; reused: number; failed: number; elapsedMs: number; firstError?: string };

function once(port: number, clientId: string, session: Buffer | undefined): Promise<{ reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...(session && { session }) });
    socket.setNoDelay(true);
    socket.on('session', (s: Buffer) => (ticket = s));
    socket.once('error', reject);
    socket.once('secureConnect', () => socket.write(connectPacket(clientId, true)));
    socket.once('data', (chunk) => {
      if (chunk[0] !== 0x20 || chunk[3] !== 0) return reject(new Error(`CONNACK refused: ${chunk.toString('hex')}`));
      const reused = socket.isSessionReused();
      // Connected: how the server then closes (some reset the socket on DISCONNECT) is not counted.
      socket.off('error', reject);
      socket.on('error', () => {});
      socket.end(DISCONNECT);
      socket.once('close', () => resolve({ reused, session: ticket }));
    });
  });
}

process.on('message', (command: TlsCommand) => {
  void (async () => {
    const started = performance.now();
    const deadline = started + command.durationMs;
    let connects = 0;
    let reused = 0;
    let failed = 0;
    let firstError: string | undefined;
    let counter = 0;
    const lane = async (): Promise<void> => {
      let session: Buffer | undefined;
      while (performance.now() < deadline) {
        try {
          const r = await once(command.port, `tls-${process.pid}-${counter++}`, command.resume ? session : undefined);
          connects++;
          if (r.reused) reused++;
          if (r.session) session = r.session;
        } catch (err) {
          failed++;
          firstError ??= (err as Error).message;
        }
      }
    };
    await Promise.all(Array.from({ length: command.parallel }, lane));
    process.send!({ type: 'done', connects, reused, failed, elapsedMs: performance.now() - started, firstError } satisfies TlsReply);
  })();
});
