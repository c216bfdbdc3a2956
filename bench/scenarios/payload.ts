import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ENVELOPE_KEY_ID } from '../load/protocol.js';
import type { BenchContext, ScenarioReport } from './context.js';
import { modeTable, type LoadShape, type Mode } from './modes.js';

/**
 * What client-to-broker payload encryption costs (docs/payload-encryption.md): the QoS 1 pairs row with the broker
 * opening every publish, and with it also sealing every delivery for its subscriber; and the same clients, holding
 * keys, on topics the rules do not cover, which must keep the figures of the row without payload encryption.
 */

const PAIRS = 4;
/** Messages per second, all publishers together, in the fixed-rate rows: below what the load generator can seal and open. */
const RATE = 20_000;
const RATE_LABEL = '@ 20k/s';
const SHAPE: LoadShape = { publishers: PAIRS, subscribers: PAIRS, wildcard: false, qos: 1, cleanSubscribers: true, payloadSize: 64, window: 16 };
// payload_encryption needs a store that keeps the replay counters; every row has the same one.
const STORE = 'store:\n  type: sqlite\n  directory: ./data\nlimits:\n  max_queued_messages: 100000\n';

export async function payloadScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const id = 'p2p-qos1-payload';
  const keyHex = randomBytes(32).toString('hex');
  const keyFile = path.join(mkdtempSync(path.join(tmpdir(), 'moat-bench-payload-')), 'payload.keys');
  const encryption = ['off', 'not covered', 'decrypt', 'reencrypt'];
  const modes = [...encryption, ...encryption.map((mode) => `${mode} ${RATE_LABEL}`)];
  // Every client of every run holds the key, as `identity: client_id` (the load generator does not log in).
  const lines: string[] = [];
  for (let round = 0; round < ctx.rounds; round++) {
    for (const mode of modes) {
      const prefix = `${id}-${mode}-${round}`.replace(/[^\w-]/g, '-');
      for (let s = 0; s < PAIRS; s++) lines.push(`${prefix}-pub-${s}:${ENVELOPE_KEY_ID}:${keyHex}`, `${prefix}-sub-${s}:${ENVELOPE_KEY_ID}:${keyHex}`);
    }
  }
  writeFileSync(keyFile, `${lines.join('\n')}\n`, { mode: 0o600 });
  try {
    return await runModes(ctx, id, keyFile, keyHex);
  } finally {
    rmSync(path.dirname(keyFile), { recursive: true, force: true });
  }
}

function runModes(ctx: BenchContext, id: string, keyFile: string, keyHex: string): Promise<ScenarioReport> {
  const protection = (topics: string, reencrypt: boolean): string =>
    `payload_encryption:\n  key_file: ${keyFile}\n  identity: client_id\n  topics: ['${topics}']\n  reencrypt: ${reencrypt}\n`;
  const fullSpeed: Record<string, Mode> = {
    off: { yaml: STORE },
    'not covered': { yaml: STORE + protection('secure/#', false) },
    decrypt: { yaml: STORE + protection('bench/#', false), load: { envelope: { keyHex, seal: true, open: false } } },
    reencrypt: { yaml: STORE + protection('bench/#', true), load: { envelope: { keyHex, seal: true, open: true } } },
  };
  const atRate = Object.entries(fullSpeed).map(([mode, m]): [string, Mode] => [`${mode} ${RATE_LABEL}`, { yaml: m.yaml, load: { ...m.load, rate: RATE / PAIRS } }]);
  return modeTable(ctx, { ...fullSpeed, ...Object.fromEntries(atRate) }, SHAPE, {
    id, title: 'QoS 1 point-to-point with client-to-broker payload encryption', column: 'payload encryption',
    describe: `${PAIRS} publisher → subscriber pairs (each on its own topic), QoS 1 both ways, 16 messages in flight per publisher, 64-byte payloads ` +
      '(103-byte envelopes, AES-256-GCM), SQLite store in every row (payload_encryption keeps its replay counters there), every client holding a key ' +
      '(`identity: client_id`): `off` without `payload_encryption`; `not covered` with it, on topics its rules do not cover (plaintext passes untouched); ' +
      '`decrypt` publishers seal each payload and the broker opens it; `reencrypt` the broker also seals each delivery for its subscriber, which opens it. ' +
      'The rows run as fast as the load generator goes are bound by the broker\'s core (the load generator, which seals and opens on one core for all ' +
      `clients, has its CPU in the table); the rows at a fixed ${RATE.toLocaleString('en-US')} msg/s (${(RATE / PAIRS).toLocaleString('en-US')} per publisher) compare the broker's CPU per message at one rate`,
  });
}
