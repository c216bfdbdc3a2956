/**
 * The floor under any MQTT broker written for Node.js, for the latency row: a `net`
 * server that answers CONNECT and SUBSCRIBE and copies every QoS 0 PUBLISH, as it
 * came, to each connection that has subscribed to anything. No topic matching, no
 * sessions, no checks: what is left of a broker's latency is Node's and the machine's.
 * `node node-relay-floor.js PORT`.
 */
import net from 'node:net';
import { FrameReader } from '../lib/frames.js';

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const PINGRESP = Buffer.from([0xd0, 0x00]);
const subscribers = new Set<net.Socket>();

function header(firstByte: number, length: number): Buffer {
  const bytes = [firstByte];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    bytes.push(byte);
  } while (length > 0);
  return Buffer.from(bytes);
}

const server = net.createServer({ noDelay: true }, (socket) => {
  const reader = new FrameReader((first, buf, start, end) => {
    const type = first >> 4;
    if (type === 1) socket.write(CONNACK);
    else if (type === 8) {
      subscribers.add(socket);
      socket.write(Buffer.from([0x90, 0x03, buf[start]!, buf[start + 1]!, 0x00]));
    } else if (type === 3) {
      const frame = Buffer.concat([header(first, end - start), buf.subarray(start, end)]);
      for (const subscriber of subscribers) subscriber.write(frame);
    } else if (type === 12) socket.write(PINGRESP);
    else if (type === 14) socket.end();
  });
  socket.on('data', (chunk: Buffer) => reader.push(chunk));
  socket.on('error', () => {});
  socket.on('close', () => subscribers.delete(socket));
});
server.listen(Number(process.argv[2]), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
