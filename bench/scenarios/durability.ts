import type { BenchContext, ScenarioReport } from './context.js';
import { modeTable } from './modes.js';

/** QoS 1 toward persistent sessions with each `durability` setting: what the promise of docs/storage.md costs. */

// Publishers are acknowledged once a message is stored, not once it is delivered; a queue larger than the
// default 1,000 keeps a momentary stall of the subscriber process from turning into drops.
const QUEUE = 'limits:\n  max_queued_messages: 100000\n';

export const PERSISTENT_QUEUE_LIMIT = QUEUE;

const MODES = {
  strict: 'store:\n  type: sqlite\n  directory: ./data\n  durability: strict\n' + QUEUE,
  periodic: 'store:\n  type: sqlite\n  directory: ./data\n  durability: periodic\n  flush_interval_ms: 100\n' + QUEUE,
  memory: 'store:\n  type: memory\n' + QUEUE,
} as const;
const WINDOW = 16;

export async function durabilityScenario(ctx: BenchContext): Promise<ScenarioReport> {
  return persistentQos1(ctx, MODES, { id: 'durability', title: 'QoS 1 throughput by durability setting', column: 'durability' });
}

/** The same QoS 1 load toward persistent sessions, against one Moat configuration per mode (a `store:` section and limits). */
export async function persistentQos1(ctx: BenchContext, modes: Record<string, string>, report: { id: string; title: string; column: string }): Promise<ScenarioReport> {
  const pairs = ctx.quick ? 2 : 8;
  const describe = `${pairs} publisher → persistent-session subscriber pairs (clean session 0, QoS 1 subscriptions), QoS 1, 64-byte payloads, ` +
    `${WINDOW} messages in flight per publisher (below the broker's default inflight window toward each subscriber, so no queue builds up and nothing is dropped by the queue limit)`;
  return modeTable(
    ctx,
    Object.fromEntries(Object.entries(modes).map(([mode, yaml]) => [mode, { yaml }])),
    { publishers: pairs, subscribers: pairs, wildcard: false, qos: 1, cleanSubscribers: false, payloadSize: 64, window: WINDOW },
    { ...report, describe },
  );
}
