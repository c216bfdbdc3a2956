import path from 'node:path';
import { topicFilterError } from '../protocol/index.js';
import { parsePayloadKeys } from '../payload/keys.js';
import { readAt, type Locate } from './file-checks.js';
import type { FileConfig } from './schema.js';

/** The `payload_encryption:` section (docs/payload-encryption.md), its key file read and checked at load. */
export interface PayloadConfig {
  keyFile: string;
  identity: 'username' | 'client_id';
  topics: string[];
  replayWindow: number | undefined;
  /** Deliveries on the topics to subscribers holding keys are sealed for them. */
  reencrypt: boolean;
}

export function readPayload(config: FileConfig, base: string, located: Locate): PayloadConfig | undefined {
  const section = config.payload_encryption;
  if (!section) return undefined;
  // The replay state and the broker's own counters must outlive the process and be kept in one place: a memory
  // store forgets them (a captured envelope would be accepted again after a restart), and each worker of
  // multi-core mode would keep its own (a captured envelope replayed through another worker).
  if (config.store?.type === 'memory') {
    throw located(['payload_encryption'], 'needs a store that outlives the broker (sqlite or redis): with the memory store, replayed envelopes would be accepted again after every restart');
  }
  if (config.workers === 'auto' || (config.workers ?? 1) > 1) {
    throw located(['payload_encryption'], `not yet in multi-core mode (workers: ${config.workers}): each worker would keep its own replay state, so a captured envelope could be replayed through another; run with workers: 1`);
  }
  section.topics.forEach((filter, i) => {
    const problem = topicFilterError(filter);
    if (problem) throw located(['payload_encryption', 'topics', String(i)], `"${filter}" is not a topic filter: ${problem}`);
  });
  const keyFile = path.resolve(base, section.key_file);
  const text = readAt(located, ['payload_encryption', 'key_file'], keyFile).toString('utf8');
  try {
    parsePayloadKeys(text, keyFile);
  } catch (err) {
    throw located(['payload_encryption', 'key_file'], (err as Error).message);
  }
  return { keyFile, identity: section.identity ?? 'username', topics: section.topics, replayWindow: section.replay_window, reencrypt: section.reencrypt ?? false };
}
