/**
 * Reads the Client Identifier from the first bytes of a connection, before any
 * broker sees them, so the primary can pick the worker. Only the start of CONNECT is
 * needed: the identifier comes before the will, user name and password [MQTT-3.1.3-3].
 * Anything that is not a well-formed start of CONNECT is `unknown`: the worker it goes
 * to then answers it as the protocol says.
 */
export type PeekResult = { clientId: string } | 'more' | 'unknown';

const CONNECT_FIRST_BYTE = 0x10;

export function peekClientId(head: Buffer): PeekResult {
  if (head.length === 0) return 'more';
  if (head[0] !== CONNECT_FIRST_BYTE) return 'unknown';
  let pos = 1;
  let remaining = 0;
  for (let shift = 0; ; shift += 7) {
    if (pos >= head.length) return 'more';
    if (shift > 21) return 'unknown';
    const byte = head[pos++]!;
    remaining += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) break;
  }
  const end = pos + remaining;
  const need = (n: number): 'more' | 'unknown' | undefined => {
    if (pos + n > end) return 'unknown';
    if (pos + n > head.length) return 'more';
    return undefined;
  };
  let missing = need(2);
  if (missing) return missing;
  const nameLength = head.readUInt16BE(pos);
  if (nameLength > 6) return 'unknown'; // "MQTT" or "MQIsdp"
  missing = need(2 + nameLength + 4);
  if (missing) return missing;
  pos += 2 + nameLength;
  const level = head[pos]!;
  pos += 4; // level, flags, keep alive
  if (level === 5) {
    let propertiesLength = 0;
    for (let shift = 0; ; shift += 7) {
      missing = need(1);
      if (missing) return missing;
      if (shift > 21) return 'unknown';
      const byte = head[pos++]!;
      propertiesLength += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) break;
    }
    missing = need(propertiesLength);
    if (missing) return missing;
    pos += propertiesLength;
  }
  missing = need(2);
  if (missing) return missing;
  const idLength = head.readUInt16BE(pos);
  pos += 2;
  missing = need(idLength);
  if (missing) return missing;
  return { clientId: head.toString('utf8', pos, pos + idLength) };
}
