/**
 * Aedes as a peer for the side-by-side benchmark: `node aedes-server.js PORT nodelay|delay|ws [CERT KEY]`.
 * In-memory persistence (its default); `nodelay` turns Nagle's algorithm off on each socket;
 * with a certificate and key (PEM files) it serves MQTT over TLS. `ws` serves MQTT over WebSockets
 * as Aedes' documentation does (docs/Examples.md): a `ws` WebSocketServer on a Node HTTP server, each
 * connection handed to Aedes through `createWebSocketStream` (Node's HTTP server sets no-delay itself).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { Aedes } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';

const [portArg, modeArg, certFile, keyFile] = process.argv.slice(2);
const noDelay = modeArg === 'nodelay';
const broker = await Aedes.createBroker();
const onSocket = (socket: net.Socket): void => {
  if (noDelay) socket.setNoDelay(true);
  broker.handle(socket);
};
const webSocketServer = (): http.Server => {
  const httpServer = http.createServer();
  new WebSocketServer({ server: httpServer }).on('connection', (websocket, req) => broker.handle(createWebSocketStream(websocket), req));
  return httpServer;
};
const server = modeArg === 'ws'
  ? webSocketServer()
  : certFile && keyFile
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
