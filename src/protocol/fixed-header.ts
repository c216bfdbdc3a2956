import { varintLength, Writer } from './primitives.js';

/** Allocates a writer for a whole packet and writes its fixed header. */
export function startPacket(firstByte: number, remainingLength: number): Writer {
  const w = new Writer(1 + varintLength(remainingLength) + remainingLength);
  w.u8(firstByte);
  w.varint(remainingLength);
  return w;
}

export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}
