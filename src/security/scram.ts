import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuthMethod, AuthStep } from '../broker/enhanced-auth.js';
import type { AuthenticateRequest } from '../broker/hooks.js';
import type { AuditLog } from './audit.js';
import type { ClaimingExchange } from './guard/index.js';
import { DEFAULT_SCRAM_ITERATIONS, type ScramCredential } from './password-file.js';

/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5 enhanced authentication
 * method: client-first in CONNECT, server-first in AUTH (0x18), client-final in
 * AUTH, server-final in CONNACK. The server keeps only StoredKey and ServerKey
 * (from the password file), never a password. An unknown user gets a salt
 * derived from a server secret, so the exchange looks the same and fails at
 * the proof, like a wrong password. No channel binding (gs2 "n" or "y").
 * The server never sees the password, so it cannot refuse one with trailing
 * NUL bytes as the password check does: a client deriving its proof from
 * `pw\0` gets the keys of `pw` (HMAC pads short keys with zeros). Such a
 * client must know `pw` anyway, and SASLprep (RFC 4013, which RFC 5802 asks
 * of clients) prohibits U+0000; keys are never made from a password with a NUL.
 */

export const SCRAM_METHOD = 'SCRAM-SHA-256';

export interface ScramUsers {
  scramCredential(username: string): ScramCredential | undefined;
}

const hmac = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

/** `=2C` and `=3D` back to `,` and `=`; undefined for any other `=` (RFC 5802 section 5.1). */
function unescapeName(name: string): string | undefined {
  if (/=(?!2C|3D)/.test(name)) return undefined;
  return name.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

/** `a=value` attributes of a SCRAM message, in order. */
function attributes(text: string): Array<[string, string]> | undefined {
  const out: Array<[string, string]> = [];
  for (const part of text.split(',')) {
    if (part.length < 2 || part[1] !== '=') return undefined;
    out.push([part[0]!, part.slice(2)]);
  }
  return out;
}

const failure: AuthStep = { result: 'failure', reason: 'badCredentials' };

class ScramExchange implements ClaimingExchange {
  private stage: 'first' | 'final' | 'done' = 'first';
  private clientFirstBare = '';
  private serverFirst = '';
  private gs2Header = '';
  private nonce = '';
  private username = '';
  private credential: ScramCredential | undefined;

  /**
   * `expectedUser`: the user name the client gave in CONNECT, or on re-authentication
   * the user the connection already is; the SCRAM user must be the same.
   */
  constructor(
    private readonly method: ScramMethod,
    private readonly request: AuthenticateRequest,
    private readonly expectedUser: string | undefined,
  ) {}

  /** The SCRAM user (`n=`) once the client-first message is read: the guard counts a failure against it. */
  get claimedUser(): string | undefined {
    return this.username === '' ? undefined : this.username;
  }

  step(data: Buffer | undefined): AuthStep {
    const text = data?.toString('utf8');
    const step = text === undefined ? failure : this.stage === 'first' ? this.first(text) : this.stage === 'final' ? this.final(text) : failure;
    if (step.result !== 'continue') this.audit(step);
    return step;
  }

  private audit(step: AuthStep): void {
    const r = this.request;
    const who = { clientId: r.clientId, username: this.username || r.username, remoteAddress: r.remoteAddress, listener: r.listener, method: 'scram' };
    if (step.result === 'success') this.method.audit?.record({ event: 'connect.accepted', ...who });
    else this.method.audit?.record({ event: 'connect.refused', ...who, reason: 'SCRAM exchange failed (unknown user, wrong password or malformed message)' });
  }

  private first(text: string): AuthStep {
    // gs2-header: "n,," or "y,," (no channel binding); an authzid, if any, must be the user itself.
    const match = /^([ny]),(a=[^,]*)?,(.*)$/.exec(text);
    if (!match) return failure;
    this.gs2Header = `${match[1]},${match[2] ?? ''},`;
    this.clientFirstBare = match[3]!;
    const attrs = attributes(this.clientFirstBare);
    if (!attrs || attrs[0]?.[0] !== 'n' || attrs[1]?.[0] !== 'r' || attrs[1][1].length === 0) return failure;
    const username = unescapeName(attrs[0][1]);
    if (username === undefined || username.length === 0) return failure;
    if (match[2] !== undefined && unescapeName(match[2].slice(2)) !== username) return failure;
    if (this.expectedUser !== undefined && username !== this.expectedUser) return failure;
    this.username = username;
    this.credential = this.method.users.scramCredential(username);
    const salt = this.credential?.salt ?? this.method.fakeSalt(username);
    const iterations = this.credential?.iterations ?? DEFAULT_SCRAM_ITERATIONS;
    this.nonce = attrs[1][1] + this.method.serverNonce();
    this.serverFirst = `r=${this.nonce},s=${salt.toString('base64')},i=${iterations}`;
    this.stage = 'final';
    return { result: 'continue', data: Buffer.from(this.serverFirst) };
  }

  private final(text: string): AuthStep {
    this.stage = 'done';
    const proofAt = text.lastIndexOf(',p=');
    if (proofAt === -1) return failure;
    const withoutProof = text.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    if (!attrs || attrs[0]?.[0] !== 'c' || attrs[1]?.[0] !== 'r') return failure;
    if (attrs[0][1] !== Buffer.from(this.gs2Header).toString('base64') || attrs[1][1] !== this.nonce) return failure;
    const proof = Buffer.from(text.slice(proofAt + 3), 'base64');
    const credential = this.credential;
    if (!credential || proof.length !== 32) return failure;
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const clientSignature = hmac(credential.storedKey, authMessage);
    const clientKey = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
    if (!timingSafeEqual(sha256(clientKey), credential.storedKey)) return failure;
    const serverSignature = hmac(credential.serverKey, authMessage);
    return {
      result: 'success',
      data: Buffer.from(`v=${serverSignature.toString('base64')}`),
      identity: { method: 'scram', username: this.username },
    };
  }
}

export class ScramMethod implements AuthMethod {
  private readonly secret = randomBytes(32);

  /** `serverNonce` is replaceable for tests against the RFC 7677 example. */
  constructor(
    readonly users: ScramUsers,
    readonly serverNonce: () => string = () => randomBytes(18).toString('base64'),
    readonly audit?: AuditLog,
  ) {}

  /** The same salt every time for the same unknown user, different across users and brokers. */
  fakeSalt(username: string): Buffer {
    return hmac(this.secret, username).subarray(0, 16);
  }

  begin(request: AuthenticateRequest, _reauthenticate: boolean): ClaimingExchange {
    return new ScramExchange(this, request, request.username);
  }
}
