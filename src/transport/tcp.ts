import type net from 'node:net';
import { socketAddress, type PeerAddress, type Transport } from './listener.js';

/** MQTT straight on the socket: no handshake, the socket is the stream. */
export class PlainTransport implements Transport {
  constructor(private readonly onStream: (socket: net.Socket, peer: PeerAddress, tcp: net.Socket) => void) {}

  adopt(socket: net.Socket, origin?: PeerAddress): void {
    socket.setNoDelay(true);
    this.onStream(socket, socketAddress(socket, origin), socket);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
