import { randomBytes } from 'node:crypto';

/**
 * Which worker serves a client identifier: FNV-1a over its UTF-16 code units. The
 * primary and every worker compute the same answer, so a client always reaches the
 * worker that holds its session (resume, takeover and queued messages stay local).
 */
export function workerFor(clientId: string, workers: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < clientId.length; i++) {
    hash ^= clientId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % workers;
}

/**
 * Identifiers for clients that send none [MQTT-3.1.3-6], drawn until one maps to
 * this worker: a client that reconnects with its assigned identifier comes back here.
 * Takes `workers` draws on average.
 */
export function affineClientIdAssigner(index: number, workers: number): () => string {
  return () => {
    for (;;) {
      const id = `moat-${randomBytes(9).toString('base64url')}`;
      if (workerFor(id, workers) === index) return id;
    }
  };
}
