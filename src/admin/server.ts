import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { closeServer, listenOn } from '../transport/server.js';
import type { AuditLog } from '../security/audit.js';
import type { AdminAuth, AdminPrincipal } from './auth.js';
import type { AdminOptions, AdminScope } from './options.js';

/**
 * The admin listener's HTTP(S) server: routing, authentication per route, JSON errors, limits (body size,
 * header and request timeouts, open sockets), and one audit line per request. Routes are data.
 */

/**
 * What a handler answers: JSON (an object) or text with its content type; `headers` are set on the answer too (the
 * dashboard's Content-Security-Policy) and may replace the defaults (Cache-Control).
 */
export type Reply = { status?: number; headers?: Readonly<Record<string, string>> } & ({ json: unknown } | { text: string; contentType: string });

/** What a handler is given: who asked, the body, the path's parameters (decoded) and the query string. */
export interface RouteRequest {
  principal: AdminPrincipal | undefined;
  body: Buffer;
  params: Readonly<Record<string, string>>;
  query: URLSearchParams;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  /**
   * The path; a segment `{name}` takes one segment (percent-decoded, so `%2F` is a "/" inside it), a last segment
   * `{name*}` takes the rest of the path (a topic with its levels). A path without parameters wins over one with.
   */
  path: string;
  /** `open`: anyone; a scope: a token with it, or an admin user. A function decides per request (metrics_auth). */
  access: 'open' | AdminScope | (() => 'open' | AdminScope);
  /** Health probes are not audited: they come every few seconds, carry no principal and change nothing. */
  audited?: boolean;
  handle(request: RouteRequest): Reply | Promise<Reply>;
}

/** Thrown by a handler: answered with this status and `{"error": message}`. */
export class HttpError extends Error {
  constructor(readonly status: 400 | 404 | 409 | 503, message: string) {
    super(message);
  }
}

/** The parameters of `path` if it matches the route's path, else undefined. */
export function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  if (!pattern.includes('{')) return pattern === path ? {} : undefined;
  const want = pattern.split('/');
  const got = path.split('/');
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const segment = want[i]!;
    const name = /^\{(\w+)(\*?)\}$/.exec(segment);
    if (!name) {
      if (got[i] !== segment) return undefined;
      continue;
    }
    const raw = name[2] === '*' ? got.slice(i).join('/') : got[i];
    if (raw === undefined || raw === '' || (name[2] === '' && i === want.length - 1 && got.length !== want.length)) return undefined;
    try {
      params[name[1]!] = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (name[2] === '*') return params;
  }
  return got.length === want.length ? params : undefined;
}

/** Larger request bodies are refused (413) before they are read whole. */
export const MAX_BODY_BYTES = 64 * 1024;
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 30_000;
/** Sockets open at once on the admin port; more are closed as they arrive. */
const MAX_SOCKETS = 256;
/**
 * Sockets open at once from one address: a browser opens at most 6, a script one. Without it, one client holding
 * slow sockets could take every slot and leave the load balancer's /readyz probes unanswered.
 */
export const MAX_SOCKETS_PER_ADDRESS = 32;

export class AdminHttpServer {
  private readonly server: http.Server;
  private bound: { address: string; port: number } | undefined;

  constructor(
    private readonly options: AdminOptions,
    private readonly routes: readonly Route[],
    private readonly auth: AdminAuth,
    private readonly audit: AuditLog,
    private readonly onError: (err: Error) => void,
  ) {
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.serve(req, res).catch((err: unknown) => {
        this.onError(err as Error);
        if (!res.headersSent) send(res, 500, { error: 'internal error' });
        else res.destroy();
      });
    };
    const tls = options.tls;
    this.server = tls
      ? https.createServer({
        cert: tls.cert, key: tls.key, ...(tls.passphrase !== undefined && { passphrase: tls.passphrase }),
        minVersion: tls.minVersion ?? 'TLSv1.2', ...(tls.ciphers !== undefined && { ciphers: tls.ciphers }),
      }, handler)
      : http.createServer(handler);
    this.server.headersTimeout = HEADERS_TIMEOUT_MS;
    this.server.requestTimeout = REQUEST_TIMEOUT_MS;
    this.server.keepAliveTimeout = 5_000;
    this.server.maxConnections = MAX_SOCKETS;
    this.server.setTimeout(IDLE_TIMEOUT_MS, (socket) => socket.destroy());
    const perAddress = new Map<string, number>();
    // For HTTPS, 'connection' comes with the raw socket, before the handshake: the cap holds for handshakes too.
    this.server.on('connection', (socket: Socket) => {
      const address = socket.remoteAddress ?? '';
      const open = perAddress.get(address) ?? 0;
      if (open >= MAX_SOCKETS_PER_ADDRESS) {
        socket.destroy();
        return;
      }
      perAddress.set(address, open + 1);
      socket.once('close', () => {
        const left = (perAddress.get(address) ?? 1) - 1;
        if (left > 0) perAddress.set(address, left);
        else perAddress.delete(address);
      });
    });
  }

  get address(): { address: string; port: number } | undefined {
    return this.bound;
  }

  /** Binds the port; rejects with a ListenError (port in use, permission, no such address) naming the admin listener. */
  async listen(): Promise<{ address: string; port: number }> {
    this.bound = await listenOn(this.server, { host: this.options.host, port: this.options.port }, 'admin');
    return this.bound;
  }

  async close(): Promise<void> {
    const closing = closeServer(this.server);
    this.server.closeAllConnections();
    await closing;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const peer = { remoteAddress: normalise(req.socket.remoteAddress ?? ''), remotePort: req.socket.remotePort ?? 0 };
    let principal: string | undefined;
    let status = 500;
    let route: Route | undefined;
    try {
      // Exact paths first: /api/v1/broker/config is not a broker named "config".
      const exact = this.routes.filter((r) => r.path === path);
      const onPath = exact.length > 0 ? exact : this.routes.filter((r) => matchPath(r.path, path) !== undefined);
      const method = req.method === 'HEAD' ? 'GET' : req.method;
      route = onPath.find((r) => r.method === method);
      if (onPath.length === 0) return void (status = send(res, 404, { error: `no such endpoint: ${path}` }));
      if (!route) {
        res.setHeader('Allow', [...new Set(onPath.map((r) => r.method))].join(', '));
        return void (status = send(res, 405, { error: `${req.method} is not allowed on ${path}` }));
      }
      const access = typeof route.access === 'function' ? route.access() : route.access;
      let who: AdminPrincipal | undefined;
      if (access === 'open') principal = 'anonymous';
      else {
        const outcome = await this.auth.check(req.headers.authorization, peer, access);
        if (!outcome.ok) {
          principal = outcome.principal;
          if (outcome.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="moat", Basic realm="moat", charset="UTF-8"');
          return void (status = send(res, outcome.status, { error: outcome.error }));
        }
        who = outcome.principal;
        principal = who.id;
      }
      const body = await readBody(req);
      if (body === undefined) {
        res.setHeader('Connection', 'close');
        return void (status = send(res, 413, { error: `request body larger than ${MAX_BODY_BYTES} bytes` }));
      }
      let reply: Reply;
      try {
        reply = await route.handle({ principal: who, body, params: matchPath(route.path, path) ?? {}, query: url.searchParams });
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        reply = { status: err.status, json: { error: err.message } };
      }
      status = 'json' in reply
        ? send(res, reply.status ?? 200, reply.json, reply.headers)
        : sendText(res, reply.status ?? 200, reply.text, reply.contentType, reply.headers);
    } finally {
      if (route?.audited !== false) {
        this.audit.record({
          event: 'admin.request', clientId: '', listener: 'admin', remoteAddress: peer.remoteAddress,
          principal: principal ?? 'unauthenticated', httpMethod: req.method ?? '', path, status,
        });
      }
    }
  }
}

/** An IPv4 client on a dual-stack socket (::ffff:a.b.c.d) is that IPv4 address, as the MQTT listeners say. */
function normalise(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function send(res: ServerResponse, status: number, json: unknown, headers?: Readonly<Record<string, string>>): number {
  return sendText(res, status, `${JSON.stringify(json)}\n`, 'application/json; charset=utf-8', headers);
}

function sendText(res: ServerResponse, status: number, text: string, contentType: string, headers: Readonly<Record<string, string>> = {}): number {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.end(res.req.method === 'HEAD' ? undefined : text);
  return status;
}

/** The body, or undefined once it passes MAX_BODY_BYTES (the rest is not read). */
function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
