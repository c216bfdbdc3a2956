import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { PeerInfo } from '../broker/connection.js';
import type { TlsListenerOptions, WebSocketOptions } from '../broker/options.js';
import { socketAddress, type PeerAddress, type Transport } from './listener.js';
import { ServerTicketKeys } from './ticket-keys.js';
import { credentials, serverOptions, tcpSocketOf, tlsPeerIdentity } from './tls.js';
import { attachSessionCache } from './tls-sessions.js';

export interface WebSocketTransportConfig {
  websocket: WebSocketOptions;
  /** `wss://` when given. */
  tls?: TlsListenerOptions;
  /** The largest WebSocket message accepted (the broker's maximum packet size): larger ones close the connection (1009). */
  maxPayload: () => number;
  /** Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers are believed (the client's address is taken from them). */
  trustedProxy?: (address: string) => boolean;
  /** The time a client has for its TLS handshake and its HTTP request (the broker's CONNECT timeout). */
  /** Read per connection: a reload may change it. */
  handshakeTimeoutMs: () => number;
  /** Connections start with a PROXY header (read before the transport), which names the client. */
  proxied?: boolean;
}

/** Subprotocols a client may ask for, in order of preference: "mqtt" [MQTT-6.0.0-3], "mqttv3.1" for 3.1 clients. */
const SUBPROTOCOLS = ['mqtt', 'mqttv3.1'];

/**
 * MQTT over WebSockets (section 6 of the specifications): an HTTP(S) server that upgrades requests for `path`
 * from an allowed Origin and hands each connection on as a Duplex of the bytes in its binary frames. The broker
 * sees a stream and a peer, as for TCP; nothing of WebSockets reaches it. The server is never bound itself.
 */
export class WebSocketTransport implements Transport {
  private readonly server: http.Server | https.Server;
  private readonly wss: WebSocketServer;
  /** Addresses learnt before the HTTP request (PROXY headers), by TCP socket. */
  private readonly origins = new WeakMap<net.Socket, PeerAddress>();
  /** Each socket's time limit for its handshake and upgrade request, by TCP socket. */
  private readonly deadlines = new WeakMap<net.Socket, NodeJS.Timeout>();
  private ticketKeys: ServerTicketKeys | undefined;

  constructor(
    private readonly config: WebSocketTransportConfig,
    onStream: (stream: Duplex, peer: PeerInfo, tcp: net.Socket) => void,
    onHandshakeError: (err: Error, remoteAddress: string | undefined) => void,
  ) {
    const o = config.tls;
    // The server is never bound, so Node's own request timeouts (checked by a bound server) do not run: `adopt` times
    // the handshake and the request head itself.
    this.server = o === undefined ? http.createServer() : https.createServer(serverOptions(o));
    if (o !== undefined && this.server instanceof https.Server) {
      attachSessionCache(this.server, o);
      this.ticketKeys = new ServerTicketKeys(this.server, o);
    }
    if (o !== undefined) {
      this.server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
        onHandshakeError(err, this.peerAddress(socket).remoteAddress);
        // With a listener for this event Node leaves the socket open (a handshake that timed out would stay).
        socket.destroy();
      });
      // As on a TLS listener: a certificate that was requested and does not verify ends the connection.
      const requested = o.requestClientCertificate === true || o.requireClientCertificate === true;
      this.server.on('secureConnection', (socket: TLSSocket) => {
        if (requested && !socket.authorized && socket.getPeerCertificate().subject !== undefined) {
          onHandshakeError(new Error(`client certificate not trusted: ${String(socket.authorizationError)}`), this.peerAddress(socket).remoteAddress);
          socket.destroy();
        }
      });
    }
    // A plain HTTP request gets a short answer, never a page.
    this.server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket', connection: 'close' }).end('MQTT over WebSocket only\n');
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxPayload(),
      perMessageDeflate: config.websocket.perMessageDeflate === true,
      handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
    });
    this.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      const refusal = this.refusal(req);
      if (refusal !== undefined) {
        // Closed once the answer is out, whether or not the client ever closes its side.
        socket.end(`HTTP/1.1 ${refusal}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
        return;
      }
      // Read per connection (ws takes it from its options at each upgrade): a reload may change the packet size limit.
      this.wss.options.maxPayload = this.config.maxPayload();
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        clearTimeout(this.deadlines.get(socket instanceof TLSSocket ? tcpSocketOf(socket) ?? socket : socket));
        const peer: PeerInfo = { ...this.peerAddress(socket) };
        const trusted = this.config.trustedProxy;
        // Behind a PROXY header the balancer has named the client: forwarded headers are not read on top of it.
        if (trusted && !this.config.proxied && trusted(peer.remoteAddress)) {
          const forwarded = forwardedClient(req, trusted, this.config.websocket.forwardedHeader ?? 'x-forwarded-for');
          if (forwarded !== undefined) peer.remoteAddress = forwarded;
        }
        if (o !== undefined) Object.assign(peer, tlsPeerIdentity(socket as TLSSocket));
        onStream(new WebSocketStream(ws), peer, socket instanceof TLSSocket ? tcpSocketOf(socket) ?? socket : socket);
      });
    });
  }

  /** Why an upgrade request is refused (an HTTP status line), or undefined to accept it. */
  private refusal(req: http.IncomingMessage): string | undefined {
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://localhost').pathname;
    } catch {
      return '400 Bad Request'; // a request target no URL parser reads: never let it reach further
    }
    if (path !== (this.config.websocket.path ?? '/mqtt')) return '404 Not Found';
    const allowed = this.config.websocket.allowedOrigins;
    // Browsers always send Origin; a client without one (a device, a script) is not a web page acting for a user.
    const origin = req.headers.origin;
    if (allowed !== undefined && origin !== undefined && !allowed.includes(origin)) return '403 Forbidden';
    return undefined;
  }

  adopt(socket: net.Socket, origin?: PeerAddress): void {
    socket.setNoDelay(true);
    this.origins.set(socket, socketAddress(socket, origin));
    // The TLS handshake and the upgrade request must be done within the CONNECT timeout (Node's defaults are minutes).
    const deadline = setTimeout(() => socket.destroy(), this.config.handshakeTimeoutMs());
    this.deadlines.set(socket, deadline);
    socket.once('close', () => clearTimeout(deadline));
    this.server.emit('connection', socket);
    // A PROXY stage leaves the socket paused (nothing after the header lost): the HTTP server reads it from here.
    socket.resume();
  }

  close(): Promise<void> {
    // Requests still half-read would keep their sockets; upgraded sockets are the broker's, already closed.
    this.server.closeAllConnections();
    this.wss.close();
    return Promise.resolve();
  }

  /** wss: the keys session tickets are sealed with (48 bytes). */
  setTicketKeys(keys: Buffer): void {
    this.ticketKeys?.set(keys);
  }

  /** The client's address: learnt before the request (PROXY), else the TCP socket's (under the TLS one for wss). */
  private peerAddress(socket: net.Socket): PeerAddress {
    const raw = socket instanceof TLSSocket ? tcpSocketOf(socket) ?? socket : socket;
    return this.origins.get(raw) ?? socketAddress(raw);
  }

  /** wss: new certificate, key and CA for the handshakes from now on. */
  updateCredentials(tls: TlsListenerOptions): void {
    if (!(this.server instanceof https.Server)) return;
    this.server.setSecureContext(credentials(tls));
    this.ticketKeys?.credentialsChanged(tls);
  }
}

/**
 * The client's address as a trusted reverse proxy reports it in the one header it is configured to maintain
 * (`X-Forwarded-For`, or `Forwarded` of RFC 7239: never a fallback to the other, which a client could send
 * itself), read from the right (the nearest proxy's entry first) past every trusted proxy; undefined if the
 * header names no valid address.
 */
export function forwardedClient(req: http.IncomingMessage, trusted: (address: string) => boolean, name: 'x-forwarded-for' | 'forwarded'): string | undefined {
  const value = req.headers[name];
  const text = Array.isArray(value) ? value.join(',') : value ?? '';
  if (text === '') return undefined;
  const chain = name === 'forwarded'
    ? text.split(',').map((element) => /(?:^|;)\s*for=("?)([^;",]*)\1/i.exec(element.trim())?.[2] ?? '')
    : text.split(',');
  const addresses = chain.map(bareAddress);
  for (let i = addresses.length - 1; i >= 0; i--) {
    const address = addresses[i]!;
    if (net.isIP(address) === 0) return undefined; // a hop we cannot read: stop trusting the rest
    if (i === 0 || !trusted(address)) return address;
  }
  return undefined;
}

/** "[2001:db8::1]:4711" → "2001:db8::1", "192.0.2.60:8080" → "192.0.2.60". */
function bareAddress(entry: string): string {
  const text = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (bracketed) return bracketed[1]!;
  const withPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(text);
  return withPort ? withPort[1]! : text;
}

/**
 * The bytes of a WebSocket's binary messages as a stream, and what is written as binary messages. A text
 * message closes the connection [MQTT-6.0.0-1]. Reading is paused at the WebSocket when the stream's buffer
 * is full, so a client the broker stops reading is held back as a TCP one would be.
 */
class WebSocketStream extends Duplex {
  constructor(private readonly ws: WebSocket) {
    super({ allowHalfOpen: false });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        ws.close(1003, 'MQTT is carried in binary frames');
        this.destroy();
        return;
      }
      if (!this.push(data)) ws.pause();
    });
    ws.once('close', () => {
      // What the client sent before it closed is read first (the broker may be holding the stream back).
      this.push(null);
      if (this.readableLength === 0) this.destroy();
      else this.once('end', () => this.destroy());
    });
    ws.on('error', (err) => this.destroy(err));
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.ws.send(chunk, { binary: true }, done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.ws.close(1000);
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    // Destroyed (a refusal, a forced close): the socket goes now, not after a closing handshake a peer may never
    // answer, so caps on connections bound open sockets. An orderly close goes through _final.
    if (this.ws.readyState !== this.ws.CLOSED) this.ws.terminate();
    done(err);
  }
}
