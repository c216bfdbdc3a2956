/**
 * The floor under any MQTT broker written for Node.js, for the idle-connection row:
 * a `net` server that answers each CONNECT with a CONNACK and keeps the socket, nothing more.
 * `node node-net-floor.js PORT`.
 */
import net from 'node:net';

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const sockets = new Set<net.Socket>();
const server = net.createServer({ noDelay: true }, (socket) => {
  sockets.add(socket);
  socket.on('data', (chunk: Buffer) => {
    if (chunk[0] === 0x10) socket.write(CONNACK);
  });
  socket.on('error', () => {});
  socket.on('close', () => sockets.delete(socket));
});
server.listen(Number(process.argv[2]), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
