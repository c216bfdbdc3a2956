import type net from 'node:net';
import tls from 'node:tls';
import type { PeerInfo } from '../broker/connection.js';
import type { CertificateIdentity } from '../broker/hooks.js';
import { socketAddress, type PeerAddress, type Transport } from './listener.js';
import type { TlsListenerOptions } from '../broker/options.js';
import { ServerTicketKeys } from './ticket-keys.js';
import { attachSessionCache } from './tls-sessions.js';
import { PSK_SECURE_OPTIONS, provenPskIdentity, pskCipherList, pskServerOptions } from './tls-psk.js';

/**
 * TLS on a socket: hands on every socket that completed its handshake, with what it proved about the client. A
 * failed handshake (a plain-TCP client, an untrusted client certificate) ends that socket only, reported to
 * `onHandshakeError`. The server is never bound itself: sockets come from an `Acceptor`, a PROXY stage or another
 * process.
 */
export class TlsTransport implements Transport {
  private readonly server: tls.Server;
  /** Addresses learnt before the handshake (PROXY headers), by the TCP socket under the TLS one. */
  private readonly origins = new WeakMap<net.Socket, PeerAddress>();
  /** Each socket's time limit for its handshake, by TCP socket. */
  private readonly deadlines = new WeakMap<net.Socket, NodeJS.Timeout>();
  private readonly ticketKeys: ServerTicketKeys;

  /**
   * `handshakeTimeoutMs`: a client that has not completed its handshake by then is closed (Node's default, two
   * minutes, would let silent connections hold sockets; read per connection, a reload may change it). `onStream`
   * gets the TCP socket under the TLS one too.
   */
  constructor(
    options: TlsListenerOptions,
    private readonly handshakeTimeoutMs: () => number,
    onStream: (socket: tls.TLSSocket, peer: PeerInfo, tcp: net.Socket) => void,
    onHandshakeError: (err: Error, remoteAddress: string | undefined) => void,
  ) {
    const request = options.requireClientCertificate === true || options.requestClientCertificate === true;
    this.server = tls.createServer(serverOptions(options, MQTT_ALPN), (socket) => {
      const raw = tcpSocketOf(socket);
      if (raw) clearTimeout(this.deadlines.get(raw));
      // Only reachable when the certificate was requested but not required (a required one is checked by Node).
      if (request && !socket.authorized && socket.getPeerCertificate().subject !== undefined) {
        onHandshakeError(new Error(`client certificate not trusted: ${String(socket.authorizationError)}`), this.addressOf(socket));
        socket.destroy();
        return;
      }
      onStream(socket, { ...socketAddress(raw ?? socket, raw && this.origins.get(raw)), ...tlsPeerIdentity(socket) }, raw ?? socket);
    });
    this.server.on('tlsClientError', (err, socket) => {
      const reason = socket.authorizationError
        ? `client certificate not trusted: ${String(socket.authorizationError)}`
        : ((err as Error & { reason?: string }).reason ?? err.message);
      onHandshakeError(new Error(reason), this.addressOf(socket));
      // With a listener for this event Node leaves the socket open (a handshake that timed out would stay).
      socket.destroy();
    });
    attachSessionCache(this.server, options);
    this.ticketKeys = new ServerTicketKeys(this.server, options);
  }

  adopt(socket: net.Socket, origin?: PeerAddress): void {
    socket.setNoDelay(true);
    // Read now: a socket that Node destroys after a handshake whose certificate did not verify no longer knows it.
    this.origins.set(socket, socketAddress(socket, origin));
    const deadline = setTimeout(() => socket.destroy(), this.handshakeTimeoutMs());
    this.deadlines.set(socket, deadline);
    socket.once('close', () => clearTimeout(deadline));
    this.server.emit('connection', socket);
  }

  /** New certificate, key and CA for the handshakes from now on; connections already open keep theirs. */
  updateCredentials(options: TlsListenerOptions): void {
    this.server.setSecureContext(credentials(options));
    this.ticketKeys.credentialsChanged(options);
  }

  /** The keys session tickets are sealed with (48 bytes): shared by every worker, replaced on rotation. */
  setTicketKeys(keys: Buffer): void {
    this.ticketKeys.set(keys);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private addressOf(socket: tls.TLSSocket): string | undefined {
    const raw = tcpSocketOf(socket);
    return (raw && this.origins.get(raw)?.remoteAddress) ?? socket.remoteAddress;
  }
}

/** The ALPN protocol id of MQTT (IANA registry), which a TLS listener advertises. */
export const MQTT_ALPN: readonly string[] = ['mqtt'];

/**
 * The options of a TLS server (a TLS listener, or a WebSocket listener serving wss://) from a listener's TLS options.
 * `alpn`: the protocols to advertise (RFC 7301), `MQTT_ALPN` on a TLS listener. A client that offers ALPN without
 * one of them is refused with a no_application_protocol alert, as RFC 7301 asks; one that offers none goes on.
 * A wss server gives none (Node's HTTPS server then advertises http/1.1, what browsers ask for).
 */
export function serverOptions(o: TlsListenerOptions, alpn?: readonly string[]): tls.TlsOptions {
  if (o.cert === undefined && o.psk === undefined) throw new Error('a TLS listener needs a certificate and key, or PSK keys');
  return {
    ...credentials(o),
    requestCert: o.requireClientCertificate === true || o.requestClientCertificate === true,
    // With a certificate only requested, one that does not verify still ends the handshake:
    // `certificate` in the hooks is always a verified one. Without a certificate the client goes on.
    rejectUnauthorized: o.requireClientCertificate === true,
    ...(alpn !== undefined && { ALPNProtocols: [...alpn] }),
    // Fixed with the server: the keys it looks up are replaced in place on reload (PskKeys).
    ...(o.psk !== undefined && pskServerOptions(o.psk, o.pskIdentityHint)),
  };
}

/** What `setSecureContext` takes from a listener's TLS options. */
export function credentials(o: TlsListenerOptions): tls.SecureContextOptions {
  return {
    ...(o.cert !== undefined && { cert: o.cert }), ...(o.key !== undefined && { key: o.key }),
    ...(o.ca !== undefined && { ca: o.ca }), ...(o.crl !== undefined && { crl: o.crl }),
    ...(o.passphrase !== undefined && { passphrase: o.passphrase }), ...protocolOptions(o),
  };
}

/**
 * The protocol versions and ciphers a listener accepts. With PSK keys: PSK suites first (a client that offers one
 * wants it) and SHA-256 TLS 1.3 suites first (the hash of a TLS 1.3 external PSK), in the server's order; and no
 * session tickets (tls-psk.ts).
 */
export function protocolOptions(o: TlsListenerOptions): tls.SecureContextOptions {
  const ciphers = o.ciphers ?? (o.psk !== undefined ? pskCipherList() : undefined);
  return {
    minVersion: o.minVersion ?? 'TLSv1.2',
    ...(ciphers !== undefined && { ciphers }),
    ...(o.psk !== undefined && { honorCipherOrder: true, secureOptions: PSK_SECURE_OPTIONS }),
  };
}

/** The TCP socket under a TLS one (Node keeps it as `_parent`). */
export function tcpSocketOf(socket: tls.TLSSocket): net.Socket | undefined {
  return (socket as tls.TLSSocket & { _parent?: net.Socket })._parent;
}

/** What a TLS handshake proved about the client, for `PeerInfo`: a verified certificate, the identity of a pre-shared key. */
export function tlsPeerIdentity(socket: tls.TLSSocket): { certificate?: CertificateIdentity; pskIdentity?: string } {
  const certificate = certificateIdentity(socket);
  const pskIdentity = provenPskIdentity(socket);
  return { ...(certificate && { certificate }), ...(pskIdentity !== undefined && { pskIdentity }) };
}

/** The verified client certificate of a TLS socket, in the form the authentication hooks get; undefined without one. */
export function certificateIdentity(socket: tls.TLSSocket): CertificateIdentity | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (cert.subject === undefined) return undefined;
  const commonName = firstValue(cert.subject.CN);
  return {
    subject: distinguishedName(cert.subject),
    ...(commonName !== undefined && { commonName }),
    fingerprint256: cert.fingerprint256,
    ...(cert.issuer !== undefined && { issuer: distinguishedName(cert.issuer) }),
  };
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** "CN=sensor-7,O=Example": the attributes in the order Node reports them. */
function distinguishedName(name: tls.Certificate): string {
  return Object.entries(name)
    .flatMap(([attribute, value]) => (Array.isArray(value) ? value : [value]).map((v) => `${attribute}=${String(v)}`))
    .join(',');
}
