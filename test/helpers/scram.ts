import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

/** A SCRAM-SHA-256 client, written from RFC 5802 section 3, independently of the server code. */
export class ScramClient {
  readonly nonce: string;
  private bare = '';
  private expectedServerSignature = '';

  constructor(private readonly username: string, private readonly password: string, nonce = randomBytes(18).toString('base64')) {
    this.nonce = nonce;
  }

  first(): string {
    this.bare = `n=${this.username.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${this.nonce}`;
    return `n,,${this.bare}`;
  }

  final(serverFirst: string): string {
    const fields = Object.fromEntries(serverFirst.split(',').map((f) => [f[0], f.slice(2)]));
    assert.ok(fields.r!.startsWith(this.nonce), 'the server nonce extends ours');
    const salted = pbkdf2Sync(this.password, Buffer.from(fields.s!, 'base64'), Number(fields.i), 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${fields.r}`;
    const authMessage = `${this.bare},${serverFirst},${withoutProof}`;
    const signature = createHmac('sha256', storedKey).update(authMessage).digest();
    const proof = clientKey.map((b, i) => b ^ signature[i]!);
    const serverKey = createHmac('sha256', salted).update('Server Key').digest();
    this.expectedServerSignature = `v=${createHmac('sha256', serverKey).update(authMessage).digest('base64')}`;
    return `${withoutProof},p=${Buffer.from(proof).toString('base64')}`;
  }

  verifies(serverFinal: string): boolean {
    return serverFinal === this.expectedServerSignature;
  }
}
