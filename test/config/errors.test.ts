import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultConfig, DESCRIBED_KEYWORDS, loadConfigFile, parseConfig, PATTERN_WORDS } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { makePki, type TestPki } from '../../bench/lib/pki.js';
import { configError } from '../helpers/config.js';

/**
 * Configuration errors are found by loadConfigFile/parseConfig, before anything starts, and say where
 * (file, line, dotted key) and what is wrong in plain words. Each message is asserted whole.
 */

const FILE = '/etc/moat/moat.yaml';


/** The whole message, and the same parts in the error's fields. */
function assertError(fn: () => unknown, file: string, line: number | undefined, key: string | undefined, problem: string): void {
  const err = configError(fn);
  const expected = `${file}${line !== undefined ? `:${line}` : ''}: ${key !== undefined ? `${key}: ` : ''}${problem}`;
  assert.equal(err.message, expected);
  assert.deepEqual([err.file, err.line, err.key, err.problem], [file, line, key, problem]);
}

/** ajv's own phrases; none may reach a user. */
const AJV_WORDING = /must NOT|must be [<>]=?|must match (pattern|exactly|a schema)|must have required|must be equal to|expected a value that/;

describe('config errors: an empty file is an error naming it (finding 1)', () => {
  it('an empty text, a file of blank lines, a lone "---" and a comment-only file are refused', () => {
    assertError(() => parseConfig('', FILE), FILE, undefined, undefined, 'the configuration file is empty');
    assertError(() => parseConfig('\n  \n', FILE), FILE, undefined, undefined, 'the configuration file is empty');
    assertError(() => parseConfig('---\n', FILE), FILE, undefined, undefined, 'the configuration file is empty: it holds only comments, no settings');
    assertError(() => parseConfig('# listeners:\n#   - port: 1883\n', FILE), FILE, undefined, undefined, 'the configuration file is empty: it holds only comments, no settings');
  });

  it('loadConfigFile names the empty file on disk (and a missing one, in words)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moat-empty-'));
    try {
      const file = path.join(dir, 'moat.yaml');
      writeFileSync(file, '');
      assertError(() => loadConfigFile(file), file, undefined, undefined, 'the configuration file is empty');
      assertError(() => loadConfigFile(path.join(dir, 'other.yaml')), path.join(dir, 'other.yaml'), undefined, undefined, 'cannot read the configuration file: ENOENT (no such file)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a value that is null (~) is not an empty file: it is a wrong type on line 1', () => {
    assertError(() => parseConfig('~\n', FILE), FILE, 1, undefined, 'expected object (a map of keys), got nothing');
  });
});

describe('config errors: YAML syntax in whole sentences with the line (finding 2)', () => {
  it('bad indentation names the line and the column of the key, and says what lines up with what', () => {
    assertError(() => parseConfig('limits:\n  max_connections: 10\n max_packet_size: 100\n', FILE), FILE, 3, undefined,
      'invalid YAML: bad indentation: this key (column 2) does not line up with the keys above it; the keys of one map must start in the same column');
  });

  it('a key at the indentation of a list\'s items', () => {
    assertError(() => parseConfig('listeners:\n  - port: 1\n  port: 2\n', FILE), FILE, 3, undefined,
      'invalid YAML: bad indentation: this key (column 3) does not line up with the keys above it; the keys of one map must start in the same column');
  });

  it('no message ends in the library\'s cut-off "column 1:"', () => {
    const cases = [
      'limits:\n  max_connections: 10\n max_packet_size: 100\n',
      'sys_interval: 5\nlimits:\n  max_connections: [1, 2\nlog:\n  level: info\n',
      'limits:\n\tmax_connections: 10\n',
      'listeners:\n  - port: 1883\n    host: a: b\n',
      'log:\n  level: "info\n',
      'a: 1\n---\nb: 2\n',
    ];
    for (const text of cases) {
      const err = configError(() => parseConfig(text, FILE));
      assert.equal(typeof err.line, 'number', err.message);
      assert.doesNotMatch(err.message, /:\s*$|\n/, `one line, not cut off: ${JSON.stringify(err.message)}`);
    }
  });

  it('a tab, a duplicate key (named), an unclosed [ list, a colon inside a value, an unclosed quote, two documents', () => {
    assertError(() => parseConfig('limits:\n\tmax_connections: 10\n', FILE), FILE, 2, undefined,
      'invalid YAML: a tab is used for indentation; YAML indents with spaces only (column 1)');
    assertError(() => parseConfig('sys_interval: 5\nlog:\n  level: info\nsys_interval: 6\n', FILE), FILE, 4, undefined,
      'invalid YAML: the key "sys_interval" appears twice in the same map');
    assertError(() => parseConfig('sys_interval: 5\nlimits:\n  max_connections: [1, 2\nlog:\n  level: info\n', FILE), FILE, 4, undefined,
      'invalid YAML: a [ ] list or { } map opened above is not closed before this line (or this line is not indented enough)');
    assertError(() => parseConfig('listeners:\n  - port: 1883\n    host: a: b\n', FILE), FILE, 3, undefined,
      'invalid YAML: a value runs into another "key: value" (column 11): quote a value that contains ": ", or check the indentation of the next line');
    assertError(() => parseConfig('log:\n  level: "info\n', FILE), FILE, 3, undefined, 'invalid YAML: a "quoted" value is not closed: its closing " is missing');
    assertError(() => parseConfig('sys_interval: 1\n---\nsys_interval: 2\n', FILE), FILE, 2, undefined,
      'invalid YAML: the file holds more than one YAML document (a second "---" line); a configuration is one document');
  });
});

describe('config errors: schema problems in words, never ajv\'s (finding 3)', () => {
  it('every keyword the schema uses is one the messages describe, and every pattern has words', () => {
    // Keywords whose own failures are reported by the schemas they hold.
    const structural = new Set(['properties', 'items', '$defs', '$ref']);
    const keywords = new Set<string>();
    const patterns = new Set<string>();
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(walk);
      if (node === null || typeof node !== 'object') return;
      for (const [key, value] of Object.entries(node)) {
        keywords.add(key);
        if (key === 'pattern') patterns.add(value as string);
        if (key === 'properties' || key === '$defs') Object.values(value as object).forEach(walk);
        else if (key === 'enum' || key === 'const' || key === 'required') continue;
        else walk(value);
      }
    };
    walk(configSchema);
    assert.ok(keywords.has('minItems') && keywords.has('oneOf') && keywords.has('pattern'), 'the walk sees the schema');
    for (const keyword of keywords) {
      assert.ok(structural.has(keyword) || DESCRIBED_KEYWORDS.has(keyword), `schema keyword "${keyword}" has words in describe()`);
    }
    for (const pattern of patterns) assert.ok(PATTERN_WORDS[pattern], `pattern ${pattern} has words`);
  });

  it('minItems: an empty list of listeners, algorithms or actions', () => {
    assertError(() => parseConfig('sys_interval: 1\nlisteners: []\n', FILE), FILE, 2, 'listeners', 'must list at least one listener');
    assertError(() => parseConfig('authentication:\n  - type: jwt\n    algorithms: []\n', FILE), FILE, 3, 'authentication.0.algorithms', 'must list at least one algorithm');
    assertError(() => parseConfig('authorization:\n  roles:\n    r:\n      - topic: a\n        actions: []\n', FILE), FILE, 5, 'authorization.roles.r.0.actions', 'must list at least one action');
  });

  it('maximum, minimum and exclusiveMinimum say the bound and the value given', () => {
    assertError(() => parseConfig('listeners:\n  - port: 1883\n  - port: 70000\n', FILE), FILE, 3, 'listeners.1.port', 'must be at most 65535, got 70000');
    assertError(() => parseConfig('capabilities:\n  receive_maximum: 0\n', FILE), FILE, 2, 'capabilities.receive_maximum', 'must be at least 1, got 0');
    assertError(() => parseConfig('limits:\n  connect_timeout: 0\n', FILE), FILE, 2, 'limits.connect_timeout', 'must be more than 0, got 0');
  });

  it('minLength: an empty string', () => {
    assertError(() => parseConfig('listeners:\n  - port: 1883\n    name: ""\n', FILE), FILE, 3, 'listeners.0.name', 'must not be empty');
  });

  it('pattern: a URL of the wrong scheme', () => {
    assertError(() => parseConfig('store:\n  type: redis\n  url: http://127.0.0.1:6379\n', FILE), FILE, 3, 'store.url', 'must be a redis:// or rediss:// URL, got "http://127.0.0.1:6379"');
    assertError(() => parseConfig('authentication:\n  - type: http\n    url: ftp://auth\n', FILE), FILE, 3, 'authentication.0.url', 'must be an http:// or https:// URL, got "ftp://auth"');
  });

  it('oneOf (with const inside): workers out of range or not a number lists both alternatives', () => {
    assertError(() => parseConfig('workers: 0\n', FILE), FILE, 1, 'workers', 'expected an integer from 1 to 31, or "auto", got 0');
    assertError(() => parseConfig('workers: many\n', FILE), FILE, 1, 'workers', 'expected an integer from 1 to 31, or "auto", got "many"');
  });

  it('type, enum, required and additionalProperties (with a guess at the typo)', () => {
    assertError(() => parseConfig('limits:\n  max_packet_size: big\n', FILE), FILE, 2, 'limits.max_packet_size', 'expected integer (a whole number), got "big"');
    assertError(() => parseConfig('listeners:\n', FILE), FILE, 1, 'listeners', 'expected array (a list), got nothing');
    assertError(() => parseConfig('log:\n  level: verbose\n', FILE), FILE, 2, 'log.level',
      'expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "verbose"');
    assertError(() => parseConfig('listeners:\n  - host: 127.0.0.1\n', FILE), FILE, 2, 'listeners.0', 'needs a port (TCP) or a path (a Unix domain socket)');
    assertError(() => parseConfig('limits:\n  max_packet_sise: 1000\n', FILE), FILE, 2, 'limits.max_packet_sise', 'unknown key (did you mean "max_packet_size"?)');
    assertError(() => parseConfig('colour: blue\n', FILE), FILE, 1, 'colour', 'unknown key');
  });

  it('no schema problem is worded by ajv', () => {
    const bad = [
      'listeners: []\n', 'listeners:\n  - port: 70000\n', 'listeners:\n  - port: -1\n', 'capabilities:\n  receive_maximum: 0\n',
      'limits:\n  connect_timeout: -1\n', 'listeners:\n  - port: 1\n    host: ""\n', 'store:\n  url: mysql://x\n', 'workers: 32\n',
      'workers: auto2\n', 'authentication:\n  - type: jwt\n    algorithms: [none]\n', 'limits:\n  max_packet_size: 12\n',
      'authorization:\n  http: {}\n', 'authorization:\n  users:\n    bob:\n      roles: [""]\n',
    ];
    for (const text of bad) {
      const err = configError(() => parseConfig(text, FILE));
      assert.doesNotMatch(err.message, AJV_WORDING, err.message);
    }
  });
});

describe('config errors: the files the configuration names are checked at load time', () => {
  let dir: string;
  let pki: TestPki;
  let file: string;
  const keys: Record<string, string> = {};
  /** Writes `name` in the test directory; returns its path. */
  const put = (name: string, content: string | Buffer): string => {
    const target = path.join(dir, name);
    writeFileSync(target, content);
    return target;
  };
  const pem = (kind: 'ec' | 'rsa' | 'ed25519', options: object = {}): { publicKey: string; privateKey: string } =>
    generateKeyPairSync(kind as 'ec', { ...options, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } } as never);
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-config-errors-'));
    file = path.join(dir, 'moat.yaml');
    pki = makePki();
    const ec = pem('ec', { namedCurve: 'P-256' });
    keys.ec = put('ec.pem', ec.publicKey);
    keys.ecPrivate = put('ec-private.pem', ec.privateKey);
    keys.p384 = put('p384.pem', pem('ec', { namedCurve: 'P-384' }).publicKey);
    keys.rsa = put('rsa.pem', pem('rsa', { modulusLength: 2048 }).publicKey);
    keys.rsaSmall = put('rsa-1024.pem', pem('rsa', { modulusLength: 1024 }).publicKey);
    keys.ed = put('ed.pem', pem('ed25519').publicKey);
    keys.text = put('not-a-key.pem', 'this is not a key\n');
    keys.secret = put('hs.secret', randomBytes(32));
    keys.shortSecret = put('short.secret', 'too short');
    put('users.pw', '');
    put('good.acl', 'user alice\ntopic readwrite a/#\n');
    execFileSync('openssl', ['pkey', '-in', pki.serverKeyFile, '-aes256', '-passout', 'pass:secret', '-out', path.join(dir, 'encrypted.key')], { stdio: 'pipe' });
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  });

  describe('password, ACL and audit files (finding 4)', () => {
    it('a missing password file: file, line, key and "no such file"', () => {
      assertError(() => parseConfig('listeners:\n  - port: 1883\nauthentication:\n  - type: password_file\n    path: missing.pw\n', file), file, 5,
        'authentication.0.path', `cannot read ${dir}/missing.pw: ENOENT (no such file)`);
    });

    it('a directory given as the password file', () => {
      assertError(() => parseConfig('authentication:\n  - type: password_file\n    path: .\n', file), file, 3,
        'authentication.0.path', `cannot read ${dir}: EISDIR (it is a directory, not a file)`);
    });

    it('a malformed password file: the configuration\'s line and key, then the password file\'s line', () => {
      const pw = put('broken.pw', '# users\nbroken-line\n');
      assertError(() => parseConfig('authentication:\n  - type: password_file\n    path: broken.pw\n', file), file, 3,
        'authentication.0.path', `${pw}:2: expected "username:password-hash"`);
    });

    it('a certificate provider\'s also_password_file', () => {
      assertError(() => parseConfig('authentication:\n  - type: certificate\n    also_password_file: nowhere.pw\n', file), file, 3,
        'authentication.0.also_password_file', `cannot read ${dir}/nowhere.pw: ENOENT (no such file)`);
      assert.doesNotThrow(() => parseConfig('authentication:\n  - type: certificate\n    also_password_file: users.pw\n', file));
    });

    it('a missing or malformed acl_file', () => {
      assertError(() => parseConfig('authorization:\n  unauthorized_publish: acknowledge\n  acl_file: no.acl\n', file), file, 3,
        'authorization.acl_file', `cannot read ${dir}/no.acl: ENOENT (no such file)`);
      const acl = put('bad.acl', 'user alice\ntopic sometimes a/#\n');
      const err = configError(() => parseConfig('authorization:\n  acl_file: bad.acl\n', file));
      assert.equal(err.line, 2);
      assert.equal(err.key, 'authorization.acl_file');
      assert.ok(err.problem.startsWith(`${acl}:2: `), err.message);
      assert.doesNotThrow(() => parseConfig('authorization:\n  acl_file: good.acl\n', file));
    });

    it('audit.file under a path whose directory is a file', () => {
      put('plain-file', 'x');
      assertError(() => parseConfig('audit:\n  file: plain-file/audit.log\n', file), file, 2,
        'audit.file', `cannot write to ${dir}/plain-file/audit.log: ENOTDIR (a part of the path is not a directory)`);
      assertError(() => parseConfig('audit:\n  file: .\n', file), file, 2, 'audit.file', `${dir} is a directory, not a file`);
      // A directory that does not exist yet is created when the log opens.
      assert.equal(parseConfig('audit:\n  file: logs/new/audit.log\n', file).auditFile, path.join(dir, 'logs/new/audit.log'));
    });
  });

  describe('TLS certificates and keys, per listener (finding 5)', () => {
    const tlsYaml = (tls: Record<string, string>): string =>
      ['listeners:', '  - port: 1883', '  - port: 8883', '    tls:', ...Object.entries(tls).map(([k, v]) => `      ${k}: ${v}`), ''].join('\n');

    it('a certificate given as the key', () => {
      assertError(() => parseConfig(tlsYaml({ cert_file: pki.serverCertFile, key_file: pki.serverCertFile }), file), file, 6,
        'listeners.1.tls.key_file', `${pki.serverCertFile} is a certificate, not a private key (PEM)`);
    });

    it('a file that is no key at all', () => {
      assertError(() => parseConfig(tlsYaml({ cert_file: pki.serverCertFile, key_file: keys.text! }), file), file, 6,
        'listeners.1.tls.key_file', `${keys.text} is not a private key (PEM)`);
    });

    it('the key of another certificate', () => {
      assertError(() => parseConfig(tlsYaml({ cert_file: pki.serverCertFile, key_file: pki.clientKeyFile }), file), file, 6,
        'listeners.1.tls.key_file', `the key in ${pki.clientKeyFile} does not belong to the certificate in ${pki.serverCertFile}`);
    });

    it('cert_file and key_file swapped', () => {
      assertError(() => parseConfig(tlsYaml({ cert_file: pki.serverKeyFile, key_file: pki.serverCertFile }), file), file, 5,
        'listeners.1.tls.cert_file', `${pki.serverKeyFile} holds a private key, not a certificate (PEM): are cert_file and key_file swapped?`);
    });

    it('a key encrypted with a passphrase: without the passphrase file, with a wrong one, with the right one', () => {
      const encrypted = path.join(dir, 'encrypted.key');
      assertError(() => parseConfig(tlsYaml({ cert_file: pki.serverCertFile, key_file: encrypted }), file), file, 6,
        'listeners.1.tls.key_file', `${encrypted} is encrypted with a passphrase: give it in a file named by key_passphrase_file, or decrypt the key (openssl pkey -in encrypted.key -out <new file>)`);
      writeFileSync(path.join(dir, 'wrong.pass'), 'not-it\n');
      writeFileSync(path.join(dir, 'right.pass'), 'secret\n');
      assertError(() => parseConfig(tlsYaml({ cert_file: pki.serverCertFile, key_file: encrypted, key_passphrase_file: 'wrong.pass' }), file), file, 7,
        'listeners.1.tls.key_passphrase_file', `the passphrase in ${dir}/wrong.pass does not decrypt ${encrypted}`);
      const loaded = parseConfig(tlsYaml({ cert_file: pki.serverCertFile, key_file: encrypted, key_passphrase_file: 'right.pass' }), file);
      assert.equal(loaded.broker.listeners![1]!.tls!.passphrase, 'secret', 'the final newline of the file is not part of it');
    });

    it('a cipher list OpenSSL does not know', () => {
      const err = configError(() => parseConfig(tlsYaml({ cert_file: pki.serverCertFile, key_file: pki.serverKeyFile, ciphers: 'NO-SUCH-CIPHER' }), file));
      assert.deepEqual([err.line, err.key], [7, 'listeners.1.tls.ciphers']);
      assert.match(err.problem, /^"NO-SUCH-CIPHER" is not a cipher list OpenSSL accepts/);
    });

    it('a CA file that is not a certificate, or holds a key', () => {
      assertError(() => parseConfig(tlsYaml({ cert_file: pki.serverCertFile, key_file: pki.serverKeyFile, ca_file: keys.text! }), file), file, 7,
        'listeners.1.tls.ca_file', `${keys.text} is not a CA certificate (PEM)`);
      assertError(() => parseConfig(tlsYaml({ cert_file: pki.serverCertFile, key_file: pki.serverKeyFile, ca_file: pki.serverKeyFile }), file), file, 7,
        'listeners.1.tls.ca_file', `${pki.serverKeyFile} holds a private key, not a CA certificate (PEM)`);
    });

    it('a missing key file keeps its errno', () => {
      assertError(() => parseConfig(tlsYaml({ cert_file: pki.serverCertFile, key_file: 'nowhere.key' }), file), file, 6,
        'listeners.1.tls.key_file', `cannot read ${dir}/nowhere.key: ENOENT (no such file)`);
    });

    it('a matching certificate, key and CA load', () => {
      const config = parseConfig(tlsYaml({ cert_file: pki.serverCertFile, key_file: pki.serverKeyFile, ca_file: pki.caFile }), file);
      assert.deepEqual(config.broker.listeners?.[1]?.tls?.key, pki.serverKey);
    });
  });

  describe('JWT keys against the configured algorithms (finding 6)', () => {
    const jwt = (lines: string[]): string => ['listeners:', '  - port: 1883', 'authentication:', '  - type: jwt', ...lines.map((l) => `    ${l}`), ''].join('\n');

    it('an EC P-256 key with algorithms [RS256, ES256] (the example docs/security.md used to give)', () => {
      assertError(() => parseConfig(jwt(['algorithms: [RS256, ES256]', `public_key_file: ${keys.ec}`]), file), file, 5,
        'authentication.0.algorithms', `RS256 needs an RSA key, but ${keys.ec} is an EC P-256 key; list only ES256`);
    });

    it('each listed algorithm is checked, not only the first', () => {
      assertError(() => parseConfig(jwt(['algorithms: [ES256, ES384]', `public_key_file: ${keys.ec}`]), file), file, 5,
        'authentication.0.algorithms', `ES384 needs an EC P-384 key, but ${keys.ec} is an EC P-256 key; list only ES256`);
    });

    it('a key that fits none of the listed algorithms says which it would fit', () => {
      assertError(() => parseConfig(jwt(['algorithms: [ES256]', `public_key_file: ${keys.p384}`]), file), file, 5,
        'authentication.0.algorithms', `ES256 needs an EC P-256 key, but ${keys.p384} is an EC P-384 key; this key verifies ES384 only`);
      assertError(() => parseConfig(jwt(['algorithms: [EdDSA]', `public_key_file: ${keys.rsa}`]), file), file, 5,
        'authentication.0.algorithms', `EdDSA needs an Ed25519 key, but ${keys.rsa} is an RSA key (2048 bits); this key verifies RS256, RS384, RS512, PS256, PS384 or PS512 only`);
    });

    it('an RSA key too short for jose', () => {
      assertError(() => parseConfig(jwt(['algorithms: [RS256]', `public_key_file: ${keys.rsaSmall}`]), file), file, 5,
        'authentication.0.algorithms', `RS256 needs an RSA key of at least 2048 bits, but ${keys.rsaSmall} is an RSA key (1024 bits); Moat verifies no algorithm with such a key`);
    });

    it('a file that is not a key, and a private key where the public key belongs', () => {
      assertError(() => parseConfig(jwt(['algorithms: [ES256]', `public_key_file: ${keys.text}`]), file), file, 6,
        'authentication.0.public_key_file', `${keys.text} is not a public key or a certificate (PEM)`);
      assertError(() => parseConfig(jwt(['algorithms: [ES256]', `public_key_file: ${keys.ecPrivate}`]), file), file, 6,
        'authentication.0.public_key_file', `${keys.ecPrivate} holds a private key, not a public key: give the public key (openssl pkey -in <key> -pubout) or the certificate`);
      assertError(() => parseConfig(jwt(['algorithms: [ES256]', 'public_key_file: gone.pem']), file), file, 6,
        'authentication.0.public_key_file', `cannot read ${dir}/gone.pem: ENOENT (no such file)`);
    });

    it('keys that fit load: a public key, a certificate (EC P-256), RSA for RS* and PS*, Ed25519 for EdDSA', () => {
      assert.doesNotThrow(() => parseConfig(jwt(['algorithms: [ES256]', `public_key_file: ${keys.ec}`]), file));
      assert.doesNotThrow(() => parseConfig(jwt(['algorithms: [ES256]', `public_key_file: ${pki.serverCertFile}`]), file));
      assert.doesNotThrow(() => parseConfig(jwt(['algorithms: [RS256, PS256]', `public_key_file: ${keys.rsa}`]), file));
      assert.doesNotThrow(() => parseConfig(jwt(['algorithms: [EdDSA]', `public_key_file: ${keys.ed}`]), file));
    });

    it('HMAC algorithms and secrets: HS256 needs secret_file, a secret_file takes HS* only, at least 32 bytes', () => {
      assertError(() => parseConfig(jwt(['algorithms: [ES256, HS256]', `public_key_file: ${keys.ec}`]), file), file, 5,
        'authentication.0.algorithms', 'HS256 needs an HMAC secret (secret_file), but this provider has a public_key_file; list only ES256');
      assertError(() => parseConfig(jwt(['algorithms: [HS256, RS256]', `secret_file: ${keys.secret}`]), file), file, 5,
        'authentication.0.algorithms', 'RS256 needs an RSA key, but this provider has a secret_file (a shared secret, for HS256, HS384 and HS512 only)');
      assertError(() => parseConfig(jwt(['algorithms: [HS256]', `secret_file: ${keys.shortSecret}`]), file), file, 6,
        'authentication.0.secret_file', `${keys.shortSecret} holds 9 bytes; an HMAC secret needs at least 32`);
      assertError(() => parseConfig(jwt(['algorithms: [HS256]', 'secret_file: nothing.secret']), file), file, 6,
        'authentication.0.secret_file', `cannot read ${dir}/nothing.secret: ENOENT (no such file)`);
      assert.doesNotThrow(() => parseConfig(jwt(['algorithms: [HS256, HS512]', `secret_file: ${keys.secret}`]), file));
    });

    it('a JWKS file: JSON with keys, one for each listed algorithm', () => {
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
      const set = put('keys.jwks', JSON.stringify({ keys: [{ ...ec, kid: 'k1', alg: 'ES256' }] }));
      assert.doesNotThrow(() => parseConfig(jwt(['algorithms: [ES256]', `jwks_file: ${set}`]), file));
      assertError(() => parseConfig(jwt(['algorithms: [ES256, EdDSA]', `jwks_file: ${set}`]), file), file, 5,
        'authentication.0.algorithms', `EdDSA needs an Ed25519 key, but ${set} has none (it holds an EC P-256 key for ES256)`);
      const notJson = put('bad.jwks', '{ keys: ');
      const err = configError(() => parseConfig(jwt(['algorithms: [ES256]', `jwks_file: ${notJson}`]), file));
      assert.equal(err.key, 'authentication.0.jwks_file');
      assert.ok(err.problem.startsWith(`${notJson} is not JSON: `), err.message);
      const noKeys = put('empty.jwks', '{"keys": []}');
      assertError(() => parseConfig(jwt(['algorithms: [ES256]', `jwks_file: ${noKeys}`]), file), file, 6, 'authentication.0.jwks_file', `${noKeys} holds no keys`);
    });
  });
});

describe('config: store.directory is relative to the configuration file (finding 7)', () => {
  it('a relative directory is resolved against the file\'s directory, not the working directory', () => {
    const config = parseConfig('store:\n  directory: state/moat\n', '/etc/moat/moat.yaml');
    assert.deepEqual(config.store, { type: 'sqlite', directory: '/etc/moat/state/moat', durability: 'strict', flushIntervalMs: undefined });
  });

  it('an absolute directory stays; without the key, and without a file, ./data of the working directory', () => {
    assert.equal((parseConfig('store:\n  directory: /var/lib/moat\n', '/etc/moat/moat.yaml').store as { directory: string }).directory, '/var/lib/moat');
    assert.equal((parseConfig('sys_interval: 1\n', '/etc/moat/moat.yaml').store as { directory: string }).directory, './data');
    assert.equal((defaultConfig().store as { directory: string }).directory, './data');
  });

  it('loadConfigFile with a relative path to the file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moat-store-dir-'));
    try {
      mkdirSync(path.join(dir, 'conf'));
      writeFileSync(path.join(dir, 'conf', 'moat.yaml'), 'store:\n  directory: data\n');
      const relative = path.relative(process.cwd(), path.join(dir, 'conf', 'moat.yaml'));
      assert.equal((loadConfigFile(relative).store as { directory: string }).directory, path.join(dir, 'conf', 'data'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
