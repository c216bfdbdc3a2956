/**
 * Aedes as a peer for the side-by-side benchmark: `node aedes-server.js PORT nodelay|delay [CERT KEY]`.
 * In-memory persistence (its default); `nodelay` turns Nagle's algorithm off on each socket;
 * with a certificate and key (PEM files) it serves MQTT over TLS.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Aedes } from 'aedes';

const [portArg, delayArg, certFile, keyFile] = process.argv.slice(2);
const noDelay = delayArg === 'nodelay';
const broker = await Aedes.createBroker();
const onSocket = (socket: net.Socket): void => {
  if (noDelay) socket.setNoDelay(true);
  broker.handle(socket);
};
const server = certFile && keyFile
  ? tls.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, onSocket)
  : net.createServer(onSocket);
const port = Number(portArg);
server.listen(port, '127.0.0.1');
const stop = (): void => {
  server.close();
  broker.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
