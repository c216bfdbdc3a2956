import { isUtf8 } from 'node:buffer';
import { MAX_REMAINING_LENGTH } from './constants.js';
import { malformed } from './errors.js';

/** Cursor over one packet's bytes. Every read is bounds-checked and fails as a ProtocolError. */
export class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    readonly end: number,
  ) {}

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.end - this.pos < n) throw malformed(`packet ends inside ${what}`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  varint(what: string): number {
    let value = 0;
    let multiplier = 1;
    for (let i = 0; i < 4; i++) {
      const byte = this.u8(what);
      value += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) return value;
      multiplier *= 128;
    }
    throw malformed(`${what}: variable byte integer longer than 4 bytes`);
  }

  /** Two-byte length prefixed bytes; a view into the packet, not a copy. */
  binary(what: string): Buffer {
    const len = this.u16(what);
    this.need(len, what);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  /** UTF-8 encoded string [MQTT-1.5.3-1], [MQTT-1.5.3-2]. */
  utf8(what: string): string {
    const len = this.u16(what);
    this.need(len, what);
    const start = this.pos;
    this.pos += len;
    return decodeUtf8(this.buf, start, start + len, what);
  }

  rest(): Buffer {
    const out = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return out;
  }
}

export function decodeUtf8(buf: Buffer, start: number, end: number, what: string): string {
  let ascii = true;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === 0) throw malformed(`${what} contains U+0000`, 'MQTT-1.5.3-2');
    if (c >= 0x80) ascii = false;
  }
  if (ascii) return buf.toString("latin1", start, end);
  // Well-formed UTF-8 excludes encoded surrogates (U+D800..U+DFFF) [MQTT-1.5.3-1].
  if (!isUtf8(buf.subarray(start, end))) throw malformed(`${what} is not well-formed UTF-8`, 'MQTT-1.5.3-1');
  return buf.toString("utf8", start, end);
}

export function varintLength(value: number): number {
  if (value < 128) return 1;
  if (value < 16_384) return 2;
  if (value < 2_097_152) return 3;
  return 4;
}

/** Encodes with a writer that advances `pos`; sizes are computed up front so one buffer is allocated. */
export class Writer {
  pos = 0;
  readonly buf: Buffer;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.buf[this.pos++] = v >> 8;
    this.buf[this.pos++] = v & 0xff;
  }

  u32(v: number): void {
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }

  varint(v: number): void {
    if (v > MAX_REMAINING_LENGTH) throw new RangeError(`variable byte integer ${v} out of range`);
    do {
      let byte = v % 128;
      v = Math.floor(v / 128);
      if (v > 0) byte |= 0x80;
      this.buf[this.pos++] = byte;
    } while (v > 0);
  }

  /** Writes a string whose UTF-8 length the caller has already measured. */
  utf8(s: string, byteLength: number): void {
    this.u16(byteLength);
    this.pos += this.buf.write(s, this.pos, byteLength, "utf8");
  }

  binary(b: Buffer): void {
    this.u16(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }

  bytes(b: Buffer): void {
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }
}
