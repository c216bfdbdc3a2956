import type net from 'node:net';
import tls from 'node:tls';
import { closeServer, listenOn } from './server.js';
import type { CertificateIdentity } from '../broker/hooks.js';
import type { TlsListenerOptions } from '../broker/options.js';

export interface TlsListenerConfig {
  host: string;
  port: number;
  tls: TlsListenerOptions;
}

/**
 * A TLS listener; hands every socket that completed its handshake to `onSocket`.
 * A failed handshake (a plain-TCP client, an untrusted client certificate) ends
 * that socket only, reported to `onHandshakeError`.
 */
export class TlsListener {
  private readonly server: tls.Server;

  constructor(
    private readonly config: TlsListenerConfig,
    onSocket: (socket: tls.TLSSocket) => void,
    onHandshakeError: (err: Error, remoteAddress: string | undefined) => void,
  ) {
    const o = config.tls;
    const request = o.requireClientCertificate === true || o.requestClientCertificate === true;
    this.server = tls.createServer({ ...serverOptions(o), noDelay: true } as tls.TlsOptions & net.ServerOpts, (socket) => {
      // Only reachable when the certificate was requested but not required (a required one is checked by Node).
      if (request && !socket.authorized && socket.getPeerCertificate().subject !== undefined) {
        onHandshakeError(new Error(`client certificate not trusted: ${String(socket.authorizationError)}`), socket.remoteAddress);
        socket.destroy();
        return;
      }
      onSocket(socket);
    });
    // The address is read once the TCP connection is there: a socket that Node destroys after a
    // handshake whose certificate did not verify no longer knows it.
    this.server.prependListener('connection', (raw: net.Socket) => void raw.remoteAddress);
    this.server.on('tlsClientError', (err, socket) => {
      const reason = socket.authorizationError
        ? `client certificate not trusted: ${String(socket.authorizationError)}`
        : ((err as Error & { reason?: string }).reason ?? err.message);
      onHandshakeError(new Error(reason), socket.remoteAddress ?? tcpAddressOf(socket));
    });
  }

  /** `name` is how errors name the listener (default "host:port"). */
  listen(name?: string): Promise<net.AddressInfo> {
    return listenOn(this.server, this.config.port, this.config.host, name);
  }

  /** New certificate, key and CA for the handshakes from now on; connections already open keep theirs. */
  updateCredentials(tls: TlsListenerOptions): void {
    this.server.setSecureContext(credentials(tls));
  }

  /** Stops accepting; resolves once the server is closed (open sockets are the broker's to end). */
  close(): Promise<void> {
    return closeServer(this.server);
  }
}

/** The options of a TLS server (a TLS listener, or a WebSocket listener serving wss://) from a listener's TLS options. */
export function serverOptions(o: TlsListenerOptions): tls.TlsOptions {
  return {
    ...credentials(o),
    requestCert: o.requireClientCertificate === true || o.requestClientCertificate === true,
    // With a certificate only requested, one that does not verify still ends the handshake:
    // `certificate` in the hooks is always a verified one. Without a certificate the client goes on.
    rejectUnauthorized: o.requireClientCertificate === true,
  };
}

/** What `setSecureContext` takes from a listener's TLS options. */
export function credentials(o: TlsListenerOptions): tls.SecureContextOptions {
  return { cert: o.cert, key: o.key, ...(o.ca !== undefined && { ca: o.ca }), ...(o.passphrase !== undefined && { passphrase: o.passphrase }), ...protocolOptions(o) };
}

/** The protocol versions and ciphers a listener accepts. */
export function protocolOptions(o: TlsListenerOptions): tls.SecureContextOptions {
  return { minVersion: o.minVersion ?? 'TLSv1.2', ...(o.ciphers !== undefined && { ciphers: o.ciphers }) };
}

/** The address of the TCP socket under a TLS one (Node keeps it as `_parent`; best effort, for logs and the audit trail). */
function tcpAddressOf(socket: tls.TLSSocket): string | undefined {
  return (socket as tls.TLSSocket & { _parent?: net.Socket })._parent?.remoteAddress;
}

/** What a TLS handshake proved about the client, for `PeerInfo`: a verified certificate. */
export function tlsPeerIdentity(socket: tls.TLSSocket): { certificate?: CertificateIdentity } {
  const certificate = certificateIdentity(socket);
  return certificate ? { certificate } : {};
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
