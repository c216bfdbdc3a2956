import net from 'node:net';

/**
 * The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer in front of the broker starts each
 * connection with a header naming the client's address. Pure parsing here; `readProxyHeader` applies it to a socket.
 */

/** What a complete header says: the client's address, or none (v2 LOCAL, v1 UNKNOWN: the balancer's own connection). */
export type ProxyHeader = { length: number; source?: { address: string; port: number } };

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_MAX = 107;

/** A header if `data` starts with a complete one, 'more' if it may still become one, or an error in words. */
export function parseProxyHeader(data: Buffer): ProxyHeader | 'more' | { error: string } {
  if (data.length === 0) return 'more';
  if (data[0] === 0x0d) return parseV2(data);
  if (data[0] === 0x50) return parseV1(data);
  return { error: 'no PROXY protocol header' };
}

function parseV1(data: Buffer): ProxyHeader | 'more' | { error: string } {
  const end = data.indexOf('\r\n');
  if (end === -1) {
    if (!'PROXY '.startsWith(data.subarray(0, 6).toString('latin1'))) return { error: 'no PROXY protocol header' };
    return data.length >= V1_MAX ? { error: 'PROXY v1 header too long' } : 'more';
  }
  if (end + 2 > V1_MAX) return { error: 'PROXY v1 header too long' };
  const fields = data.subarray(0, end).toString('latin1').split(' ');
  if (fields[0] !== 'PROXY') return { error: 'no PROXY protocol header' };
  if (fields[1] === 'UNKNOWN') return { length: end + 2 };
  if ((fields[1] !== 'TCP4' && fields[1] !== 'TCP6') || fields.length !== 6) return { error: 'malformed PROXY v1 header' };
  const [address, , sport] = [fields[2]!, fields[3]!, fields[4]!];
  const family = fields[1] === 'TCP4' ? 4 : 6;
  const port = Number(sport);
  if (net.isIP(address) !== family || !/^\d{1,5}$/.test(sport) || port > 65535) return { error: 'malformed PROXY v1 header' };
  return { length: end + 2, source: { address, port } };
}

function parseV2(data: Buffer): ProxyHeader | 'more' | { error: string } {
  const seen = Math.min(data.length, V2_SIGNATURE.length);
  if (!data.subarray(0, seen).equals(V2_SIGNATURE.subarray(0, seen))) return { error: 'no PROXY protocol header' };
  if (data.length < 16) return 'more';
  const versionCommand = data[12]!;
  if (versionCommand >> 4 !== 2) return { error: `PROXY v2 header of version ${versionCommand >> 4}` };
  const length = 16 + data.readUInt16BE(14);
  if (data.length < length) return 'more';
  const command = versionCommand & 0x0f;
  if (command === 0) return { length }; // LOCAL: the balancer's own connection (a health check)
  if (command !== 1) return { error: `PROXY v2 command ${command}` };
  const family = data[13]!;
  if (family === 0x11 && length >= 16 + 12) {
    return { length, source: { address: [...data.subarray(16, 20)].join('.'), port: data.readUInt16BE(24) } };
  }
  if (family === 0x21 && length >= 16 + 36) {
    // An IPv4 client seen through a dual-stack balancer (::ffff:a.b.c.d) is that IPv4 address, as Node would say.
    if (data.subarray(16, 26).every((b) => b === 0) && data.readUInt16BE(26) === 0xffff) {
      return { length, source: { address: [...data.subarray(28, 32)].join('.'), port: data.readUInt16BE(48) } };
    }
    const groups = Array.from({ length: 8 }, (_, i) => data.readUInt16BE(16 + i * 2).toString(16));
    return { length, source: { address: compressIPv6(groups), port: data.readUInt16BE(48) } };
  }
  if (family === 0x00) return { length }; // UNSPEC: nothing to say about the client
  return { error: `PROXY v2 address family 0x${family.toString(16)} not supported (TCP over IPv4 or IPv6 only)` };
}

/** The usual text form (the longest run of zero groups as "::"), as Node reports addresses. */
function compressIPv6(groups: string[]): string {
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j;
  }
  if (best === -1) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLength).join(':')}`;
}

/**
 * Reads the PROXY header a socket starts with, puts back what follows it, and calls `done` with the client's
 * address and port (the socket's own for LOCAL / UNKNOWN); the socket is left paused, for whoever reads it next
 * to resume. A socket without a valid header within `timeoutMs` is destroyed, and `refused` told why.
 */
export function readProxyHeader(
  socket: net.Socket, timeoutMs: number,
  done: (peer: { remoteAddress: string; remotePort: number }) => void, refused: (why: string) => void,
): void {
  let buffered: Buffer = Buffer.alloc(0);
  const fail = (why: string): void => {
    cleanup();
    socket.destroy();
    refused(why);
  };
  const timer = setTimeout(() => fail('no PROXY protocol header in time'), timeoutMs);
  timer.unref();
  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const header = parseProxyHeader(buffered);
    if (header === 'more') return;
    if ('error' in header) return fail(header.error);
    cleanup();
    socket.pause();
    const rest = buffered.subarray(header.length);
    if (rest.length > 0) socket.unshift(rest);
    done(header.source
      ? { remoteAddress: header.source.address, remotePort: header.source.port }
      : { remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0 });
  };
  const onEnd = (): void => fail('closed before its PROXY protocol header');
  const cleanup = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', onEnd);
    socket.off('end', onEnd);
  };
  socket.on('data', onData);
  socket.on('error', onEnd);
  socket.on('end', onEnd);
}
