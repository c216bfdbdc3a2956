import type { Properties, QoS } from '../protocol/index.js';
import { AtRestError, type AtRestCipher } from './at-rest.js';
import type { StoredMessage } from './store.js';

/**
 * Rows for stored messages: the payload stays a BLOB; properties (which may hold
 * binary values) are JSON with buffers as base64. With encryption at rest the
 * payload and the properties JSON are sealed values (src/store/at-rest.ts) and
 * `key_id` says so: a plain row has none, whatever its payload's first byte.
 */
export interface MessageRow {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: number;
  /** JSON text; the sealed JSON (a BLOB) when `key_id` is set. */
  props: string | Buffer | null;
  expires_at: number | null;
  /** The key that sealed payload and props; null: stored as they are. */
  key_id: number | null;
}

export function messageToRow(m: StoredMessage, cipher?: AtRestCipher): MessageRow {
  const props = m.properties ? JSON.stringify(m.properties, (_k, v: unknown) => (isBufferJson(v) ? { $b64: Buffer.from(v.data).toString('base64') } : v)) : null;
  const row: MessageRow = { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain ? 1 : 0, props, expires_at: m.expiresAt ?? null, key_id: null };
  return cipher ? sealRow(row, cipher) : row;
}

/** The fields of a row that encryption at rest concerns. */
export type SealableFields = Pick<MessageRow, 'topic' | 'payload' | 'props' | 'key_id'>;

/** The row with payload and props sealed under the cipher's current key (a sealed row is opened first). */
export function sealRow<R extends SealableFields>(row: R, cipher: AtRestCipher): R {
  const plain = row.key_id === null ? row : openRow(row, cipher);
  return {
    ...plain,
    payload: cipher.seal('payload', row.topic, plain.payload),
    props: plain.props === null ? null : cipher.seal('properties', row.topic, Buffer.from(plain.props as string)),
    key_id: cipher.currentKeyId,
  };
}

/** The row with payload and props as they were given; a sealed row without a cipher is refused, never read as plain. */
export function openRow<R extends SealableFields>(row: R, cipher: AtRestCipher | undefined): R {
  if (row.key_id === null) return row;
  if (!cipher) throw new AtRestError(`a stored record is encrypted (key id ${row.key_id}) but store.encryption is not configured`);
  return {
    ...row,
    payload: cipher.open('payload', row.topic, row.payload),
    props: row.props === null ? null : cipher.open('properties', row.topic, row.props as Buffer).toString('utf8'),
    key_id: null,
  };
}

/** The row's payload buffer becomes the message's (both stores hand out a fresh buffer per row). */
export function rowToMessage(row: MessageRow, cipher?: AtRestCipher): StoredMessage {
  const plain = openRow(row, cipher);
  return toMessage(plain.topic, plain.payload, plain.qos, plain.retain === 1, plain.props as string | null, plain.expires_at);
}

export function toMessage(topic: string, payload: Buffer, qos: number, retain: boolean, props: string | null, expiresAt: number | null): StoredMessage {
  const m: StoredMessage = { topic, payload, qos: qos as QoS, retain };
  if (props !== null) {
    m.properties = JSON.parse(props, (_k, v: unknown) =>
      v !== null && typeof v === 'object' && '$b64' in v ? Buffer.from((v as { $b64: string }).$b64, 'base64') : v,
    ) as Properties;
  }
  if (expiresAt !== null) m.expiresAt = expiresAt;
  return m;
}

function isBufferJson(v: unknown): v is { type: 'Buffer'; data: number[] } {
  return v !== null && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data);
}

/**
 * A stored message as one JSON string (payload and binary properties as base64), for key-value stores. Sealed:
 * payload and props are the sealed values in base64, and `key_id` is present.
 */
export function messageToJson(m: StoredMessage, cipher?: AtRestCipher): string {
  return rowToJson(messageToRow(m, cipher));
}

export function messageFromJson(text: string, cipher?: AtRestCipher): StoredMessage {
  return rowToMessage(jsonToRow(text), cipher);
}

export function rowToJson(row: MessageRow): string {
  const { key_id: keyId, ...rest } = row;
  const props = row.props === null || typeof row.props === 'string' ? row.props : row.props.toString('base64');
  return JSON.stringify({ ...rest, payload: row.payload.toString('base64'), props, ...(keyId !== null && { key_id: keyId }) });
}

export function jsonToRow(text: string): MessageRow {
  const raw = JSON.parse(text) as Omit<MessageRow, 'payload' | 'props' | 'key_id'> & { payload: string; props: string | null; key_id?: number };
  const keyId = raw.key_id ?? null;
  const props = raw.props !== null && keyId !== null ? Buffer.from(raw.props, 'base64') : raw.props;
  return { ...raw, payload: Buffer.from(raw.payload, 'base64'), props, key_id: keyId };
}
