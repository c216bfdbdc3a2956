import type { Properties, QoS } from '../protocol/index.js';
import type { StoredMessage } from './store.js';

/**
 * Rows for stored messages: the payload stays a BLOB; properties (which may hold
 * binary values) are JSON with buffers as base64.
 */
export interface MessageRow {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: number;
  props: string | null;
  expires_at: number | null;
}

export function messageToRow(m: StoredMessage): MessageRow {
  return {
    topic: m.topic,
    payload: m.payload,
    qos: m.qos,
    retain: m.retain ? 1 : 0,
    props: m.properties ? JSON.stringify(m.properties, (_k, v: unknown) => (isBufferJson(v) ? { $b64: Buffer.from(v.data).toString('base64') } : v)) : null,
    expires_at: m.expiresAt ?? null,
  };
}

/** The row's payload buffer becomes the message's (both stores hand out a fresh buffer per row). */
export function rowToMessage(row: MessageRow): StoredMessage {
  return toMessage(row.topic, row.payload, row.qos, row.retain === 1, row.props, row.expires_at);
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

/** A stored message as one JSON string (payload and binary properties as base64), for key-value stores. */
export function messageToJson(m: StoredMessage): string {
  const row = messageToRow(m);
  return JSON.stringify({ ...row, payload: row.payload.toString('base64') });
}

export function messageFromJson(text: string): StoredMessage {
  const row = JSON.parse(text) as Omit<MessageRow, 'payload'> & { payload: string };
  return rowToMessage({ ...row, payload: Buffer.from(row.payload, 'base64') });
}
