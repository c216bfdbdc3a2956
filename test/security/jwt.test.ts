import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign as signWith } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import type { IClientOptions, MqttClient, Packet } from 'mqtt';
import { createSecurity, JwtProvider, MemoryAudit, type JwtProviderOptions, type Security } from '../../src/security/index.js';
import type { AuthenticateRequest } from '../../src/broker/hooks.js';
import { connackCode } from '../helpers/security.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectV5 } from '../helpers/v5.js';

/** JWT access tokens in the CONNECT password, with real MQTT.js clients against a real broker. */


const b64url = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = (): number => Math.floor(Date.now() / 1000);

interface Setup {
  tb: TestBroker;
  security: Security;
  close(): Promise<void>;
}

async function brokerWith(jwt: JwtProviderOptions): Promise<Setup> {
  const security = createSecurity({ authentication: [{ type: 'jwt', ...jwt }], audit: new MemoryAudit() }, { info() {}, warn() {}, error() {} });
  const tb = await startBroker({ hooks: security.hooks, listeners: [{ host: '127.0.0.1', port: 0, allowAnonymous: false }] });
  return { tb, security, close: () => tb.close() };
}

describe('JWT authentication', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-jwt-'));
  const clients: MqttClient[] = [];
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    rmSync(dir, { recursive: true, force: true });
  });
  const accepted = async (url: string, options: IClientOptions): Promise<MqttClient> => {
    const { code, client } = await connackCode(url, options);
    assert.equal(code, 0, 'CONNACK accepted');
    clients.push(client!);
    return client!;
  };

  describe('HS256 with a secret file', () => {
    const secret = randomBytes(32);
    const other = randomBytes(32);
    let s: Setup;
    const sign = (claims: JWTPayload, key = secret, alg = 'HS256'): Promise<string> =>
      new SignJWT(claims).setProtectedHeader({ alg }).sign(new Uint8Array(key));
    before(async () => {
      writeFileSync(path.join(dir, 'hs.secret'), secret);
      s = await brokerWith({ algorithms: ['HS256'], secretFile: path.join(dir, 'hs.secret'), issuer: 'moat-tests', audience: 'moat' });
    });
    after(() => s.close());
    const good = (extra: JWTPayload = {}): JWTPayload => ({ sub: 'dana', iss: 'moat-tests', aud: 'moat', exp: now() + 3600, ...extra });

    it('accepts a valid token, with a user name matching sub, or none at all (MQTT 5; the identity comes from sub)', async () => {
      await accepted(s.tb.url, { clientId: 'jwt-2', username: 'dana', password: await sign(good()) });
      // MQTT.js always sends a user name with a password; a raw MQTT 5 CONNECT may leave it out.
      const { raw, connack } = await connectV5(s.tb.port, { clientId: 'jwt-raw', password: Buffer.from(await sign(good())) });
      assert.equal(connack.returnCode, 0);
      assert.equal([...s.tb.broker.connections].find((c) => c.client?.id === 'jwt-raw')?.client?.identity?.username, 'dana');
      raw.destroy();
    });

    it('refuses (3.1.1: 4, MQTT 5: 0x86): expired, not yet valid, wrong audience, wrong issuer, forged signature, no exp, no sub, user name not matching', async () => {
      const cases: Array<[string, string]> = [
        ['expired', await sign(good({ exp: now() - 120 }))],
        ['not yet valid', await sign(good({ nbf: now() + 600 }))],
        ['wrong audience', await sign(good({ aud: 'someone-else' }))],
        ['wrong issuer', await sign(good({ iss: 'evil' }))],
        ['forged signature', await sign(good(), other)],
        ['no exp (a token must end)', await sign({ sub: 'dana', iss: 'moat-tests', aud: 'moat' })],
        ['no sub (nobody named)', await sign({ iss: 'moat-tests', aud: 'moat', exp: now() + 3600 })],
      ];
      for (const [what, token] of cases) {
        assert.equal((await connackCode(s.tb.url, { clientId: 'bad', username: 'dana', password: token })).code, 4, what);
        assert.equal((await connackCode(s.tb.url, { clientId: 'bad5', username: 'dana', password: token, protocolVersion: 5 })).code, 0x86, `${what} (v5)`);
      }
      assert.equal((await connackCode(s.tb.url, { clientId: 'bad', username: 'eve', password: await sign(good()) })).code, 4, 'user name not matching sub');
    });

    it('refuses alg: none, whatever its claims', async () => {
      const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(good())}.`;
      assert.equal((await connackCode(s.tb.url, { clientId: 'none', username: 'dana', password: unsigned })).code, 4);
    });
  });

  describe('RS256 with a public key file', () => {
    let s: Setup;
    let sign: (claims: JWTPayload) => Promise<string>;
    let publicPem = '';
    before(async () => {
      const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
      publicPem = await exportSPKI(publicKey);
      writeFileSync(path.join(dir, 'rs.pem'), publicPem);
      sign = (claims) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('1h').sign(privateKey);
      s = await brokerWith({ algorithms: ['RS256'], publicKeyFile: path.join(dir, 'rs.pem') });
    });
    after(() => s.close());

    it('accepts a token signed with the private key', async () => {
      await accepted(s.tb.url, { clientId: 'rs-1', username: 'rita', password: await sign({ sub: 'rita' }) });
    });

    it('refuses a token signed with the public key as an HMAC secret (algorithm confusion)', async () => {
      const forged = await new SignJWT({ sub: 'rita' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(publicPem));
      assert.equal((await connackCode(s.tb.url, { clientId: 'confused', username: 'rita', password: forged })).code, 4);
    });
  });

  describe('a JWKS served over HTTP (ES256 and EdDSA keys), with permissions in a claim', () => {
    let s: Setup;
    let server: http.Server;
    let fetches = 0;
    let signEs: (claims: JWTPayload, kid?: string) => Promise<string>;
    let signEd: (claims: JWTPayload, exp?: number) => Promise<string>;
    before(async () => {
      const es = await generateKeyPair('ES256', { extractable: true });
      const ed = await generateKeyPair('EdDSA', { extractable: true });
      const jwks = { keys: [{ ...(await exportJWK(es.publicKey)), kid: 'es-1', alg: 'ES256' }, { ...(await exportJWK(ed.publicKey)), kid: 'ed-1', alg: 'EdDSA' }] };
      server = http.createServer((_req, res) => {
        fetches++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks.json`;
      signEs = (claims, kid = 'es-1') => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid }).setExpirationTime('1h').sign(es.privateKey);
      signEd = (claims, exp = now() + 3600) => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: 'ed-1' }).setExpirationTime(exp).sign(ed.privateKey);
      s = await brokerWith({ algorithms: ['ES256', 'EdDSA'], jwksUrl: url, permissionsClaim: 'mqtt', clockToleranceSeconds: 0 });
    });
    after(async () => {
      await s.close();
      await new Promise((resolve) => server.close(resolve));
    });

    it('accepts ES256 and EdDSA tokens by kid, fetching the key set once (cached)', async () => {
      await accepted(s.tb.url, { clientId: 'es', username: 'edge', password: await signEs({ sub: 'edge' }) });
      await accepted(s.tb.url, { clientId: 'ed', username: 'edge', password: await signEd({ sub: 'edge' }) });
      assert.equal(fetches, 1);
      assert.equal((await connackCode(s.tb.url, { clientId: 'kid', username: 'edge', password: await signEs({ sub: 'edge' }, 'unknown-kid') })).code, 4);
    });

    it('enforces the permissions the token carries', async () => {
      const token = await signEs({ sub: 'device7', mqtt: { publish: ['devices/7/#'], subscribe: ['commands/7'] } });
      const c = await accepted(s.tb.url, { clientId: 'dev7', username: 'device7', password: token, protocolVersion: 5 });
      await c.publishAsync('devices/7/temp', '21', { qos: 1 });
      await assert.rejects(c.publishAsync('devices/8/temp', '21', { qos: 1 }), (err: { code?: number }) => err.code === 0x87);
      const codes = await new Promise<number[]>((resolve) => {
        const onPacket = (p: Packet): void => {
          if (p.cmd !== 'suback') return;
          c.off('packetreceive', onPacket);
          resolve(p.granted as number[]);
        };
        c.on('packetreceive', onPacket);
        c.subscribe(['commands/7', 'commands/#'], () => {});
      });
      assert.deepEqual(codes, [0, 0x87]);
    });

    it('disconnects the client when its token expires (MQTT 5: DISCONNECT 0xA0)', async () => {
      const shortLived = await signEd({ sub: 'short' }, now() + 2);
      const c = await accepted(s.tb.url, { clientId: 'short', username: 'short', password: shortLived, protocolVersion: 5 });
      const reason = await new Promise<number>((resolve) => c.on('disconnect', (packet) => resolve(packet.reasonCode ?? 0)));
      assert.equal(reason, 0xa0);
    });
  });

  describe('a JWKS file, with groups from a claim bound to configured roles', () => {
    let tb: TestBroker;
    let sign: (claims: JWTPayload) => Promise<string>;
    before(async () => {
      const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
      writeFileSync(path.join(dir, 'keys.jwks'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] }));
      sign = (claims) => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime('1h').sign(privateKey);
      const security = createSecurity({
        authentication: [{ type: 'jwt', algorithms: ['ES256'], jwksFile: path.join(dir, 'keys.jwks'), groupsClaim: 'groups' }],
        authorization: { rules: { roles: { ops: [{ filter: 'ops/#', actions: ['publish', 'subscribe'], effect: 'allow' }] }, groups: { operators: { roles: ['ops'] } } } },
        audit: new MemoryAudit(),
      }, { info() {}, warn() {}, error() {} });
      tb = await startBroker({ hooks: security.hooks, listeners: [{ host: '127.0.0.1', port: 0, allowAnonymous: false }] });
    });
    after(() => tb.close());

    it('a token in the operators group may use ops/#; one without the group may not', async () => {
      const op = await accepted(tb.url, { clientId: 'op', username: 'olga', password: await sign({ sub: 'olga', groups: ['operators'] }), protocolVersion: 5 });
      await op.publishAsync('ops/deploy', 'go', { qos: 1 });
      const guest = await accepted(tb.url, { clientId: 'guest', username: 'gus', password: await sign({ sub: 'gus', groups: ['guests'] }), protocolVersion: 5 });
      await assert.rejects(guest.publishAsync('ops/deploy', 'go', { qos: 1 }), (err: { code?: number }) => err.code === 0x87);
    });
  });
  describe('keys that cannot serve an algorithm never end the process', () => {
    const request = (token: string): AuthenticateRequest => ({
      clientId: 'c', username: undefined, password: Buffer.from(token), protocolVersion: 5, remoteAddress: '127.0.0.1', listener: 'test', allowAnonymous: false, remotePort: 1,
    });

    it('a public key that cannot verify a listed algorithm, or a file that is no key, is an error when the provider is made (not a rejection found after start)', async () => {
      const ec = path.join(dir, 'p256.pem');
      writeFileSync(ec, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));
      const junk = path.join(dir, 'junk.pem');
      writeFileSync(junk, 'not a key\n');
      const rejections: unknown[] = [];
      const onRejection = (reason: unknown): void => {
        rejections.push(reason);
      };
      process.on('unhandledRejection', onRejection);
      try {
        assert.throws(() => new JwtProvider({ algorithms: ['RS256', 'ES256'], publicKeyFile: ec }), {
          message: `jwt: RS256 needs an RSA key, but ${ec} is an EC P-256 key`,
        });
        assert.throws(() => new JwtProvider({ algorithms: ['ES256'], publicKeyFile: junk }), { message: `${junk} is not a public key or a certificate (PEM)` });
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.deepEqual(rejections, [], 'no promise left to reject later');
      } finally {
        process.off('unhandledRejection', onRejection);
      }
    });

    it('a key jose cannot use for one token (an RSA key under 2048 bits in a key set) refuses that client, and the next one is served', async () => {
      const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
      const es = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const file = path.join(dir, 'mixed.jwks');
      writeFileSync(file, JSON.stringify({ keys: [
        { ...small.publicKey.export({ format: 'jwk' }), kid: 'small', alg: 'RS256' },
        { ...es.publicKey.export({ format: 'jwk' }), kid: 'es', alg: 'ES256' },
      ] }));
      const provider = new JwtProvider({ algorithms: ['RS256', 'ES256'], jwksFile: file });
      // jose will not sign with so small a key either: sign by hand.
      const header = b64url({ alg: 'RS256', kid: 'small' });
      const body = b64url({ sub: 'sam', exp: now() + 600 });
      const smallToken = `${header}.${body}.${signWith('sha256', Buffer.from(`${header}.${body}`), small.privateKey).toString('base64url')}`;
      const refused = await provider.authenticate(request(smallToken));
      assert.equal(refused.outcome, 'refuse');
      assert.match((refused as { why: string }).why, /2048/);
      const good = await new SignJWT({ sub: 'sam' }).setProtectedHeader({ alg: 'ES256', kid: 'es' }).setExpirationTime('10m').sign(es.privateKey);
      assert.equal((await provider.authenticate(request(good))).outcome, 'accept');
    });
  });
});
