import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { CertificateIdentity } from '../broker/hooks.js';
import type { TlsListenerOptions, WebSocketOptions } from '../broker/options.js';
import { closeServer, listenOn } from './server.js';
import { credentials, serverOptions, tlsPeerIdentity } from './tls.js';

export interface WebSocketListenerConfig {
  host: string;
  port: number;
  websocket: WebSocketOptions;
  /** `wss://` when given. */
  tls?: TlsListenerOptions;
  /** The largest WebSocket message accepted (the broker's maximum packet size): larger ones close the connection (1009). */
  maxPayload: number;
  /** Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers are believed (the client's address is taken from them). */
  trustedProxy?: (address: string) => boolean;
}

export interface WebSocketPeer {
  remoteAddress: string;
  remotePort: number;
  certificate?: CertificateIdentity;
  pskIdentity?: string;
}

/** Subprotocols a client may ask for, in order of preference: "mqtt" [MQTT-6.0.0-3], "mqttv3.1" for 3.1 clients. */
const SUBPROTOCOLS = ['mqtt', 'mqttv3.1'];

/**
 * MQTT over WebSockets (section 6 of the specifications): an HTTP(S) server that upgrades requests for `path`
 * from an allowed Origin and hands each connection on as a Duplex of the bytes in its binary frames. The broker
 * sees a stream and a peer, as for TCP; nothing of WebSockets reaches it.
 */
export class WebSocketListener {
  private readonly server: http.Server | https.Server;
  private readonly wss: WebSocketServer;

  constructor(
    private readonly config: WebSocketListenerConfig,
    onStream: (stream: Duplex, peer: WebSocketPeer) => void,
    onHandshakeError: (err: Error, remoteAddress: string | undefined) => void,
  ) {
    const o = config.tls;
    this.server = o === undefined ? http.createServer() : https.createServer(serverOptions(o));
    this.server.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
    if (o !== undefined) {
      this.server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => onHandshakeError(err, socket.remoteAddress));
      // As on a TLS listener: a certificate that was requested and does not verify ends the connection.
      const requested = o.requestClientCertificate === true || o.requireClientCertificate === true;
      this.server.on('secureConnection', (socket: tls.TLSSocket) => {
        if (requested && !socket.authorized && socket.getPeerCertificate().subject !== undefined) {
          onHandshakeError(new Error(`client certificate not trusted: ${String(socket.authorizationError)}`), socket.remoteAddress);
          socket.destroy();
        }
      });
    }
    // A client must finish its HTTP request head in time (Node's defaults are a minute and more).
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
    // A plain HTTP request gets a short answer, never a page.
    this.server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket', connection: 'close' }).end('MQTT over WebSocket only\n');
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxPayload,
      perMessageDeflate: config.websocket.perMessageDeflate === true,
      handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
    });
    this.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      const refusal = this.refusal(req);
      if (refusal !== undefined) {
        socket.end(`HTTP/1.1 ${refusal}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        const peer: WebSocketPeer = { remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0 };
        const trusted = this.config.trustedProxy;
        if (trusted && trusted(peer.remoteAddress)) {
          const forwarded = forwardedClient(req, trusted, this.config.websocket.forwardedHeader ?? 'x-forwarded-for');
          if (forwarded !== undefined) peer.remoteAddress = forwarded;
        }
        if (o !== undefined) Object.assign(peer, tlsPeerIdentity(socket as tls.TLSSocket));
        onStream(new WebSocketStream(ws), peer);
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

  listen(name?: string): Promise<net.AddressInfo> {
    return listenOn(this.server, this.config.port, this.config.host, name);
  }

  async close(): Promise<void> {
    const closed = closeServer(this.server);
    // Requests still half-read would hold the close; upgraded sockets are the broker's, already closed.
    this.server.closeAllConnections();
    await closed;
    this.wss.close();
  }

  /** wss: new certificate, key and CA for the handshakes from now on. */
  updateCredentials(tls: TlsListenerOptions): void {
    if (this.server instanceof https.Server) this.server.setSecureContext(credentials(tls));
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
