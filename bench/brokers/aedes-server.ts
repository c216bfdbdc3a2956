/**
 * Aedes as a peer for the side-by-side benchmark: `node aedes-server.js PORT [nodelay]`.
 * In-memory persistence (its default); `nodelay` turns Nagle's algorithm off on each socket.
 */
import net from 'node:net';
import { Aedes } from 'aedes';

const port = Number(process.argv[2]);
const noDelay = process.argv[3] === 'nodelay';
const broker = await Aedes.createBroker();
const server = net.createServer((socket) => {
  if (noDelay) socket.setNoDelay(true);
  broker.handle(socket);
});
server.listen(port, '127.0.0.1');
const stop = (): void => {
  server.close();
  broker.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
