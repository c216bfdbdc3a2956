import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { AtRestCipher, AtRestError, AtRestKeyFileError, parseAtRestKeys, SEALED_FORMAT, SEALED_OVERHEAD } from '../../src/store/at-rest.js';
import { messageFromJson, messageToJson, messageToRow, rowToMessage } from '../../src/store/codec.js';

const KEY_A = '11'.repeat(32);
const KEY_B = '22'.repeat(32);
const FILE = '/etc/moat/store.keys';

/** The cipher of encryption at rest, on its own: no store, no broker. */
describe('encryption at rest: the cipher', () => {
  const cipher = new AtRestCipher(parseAtRestKeys(`1:${KEY_A}\n`, FILE));

  it('seals as 0xE5 | key id | nonce | ciphertext | tag and opens it again', () => {
    const plain = Buffer.from('temperature 21.5');
    const sealed = cipher.seal('payload', 'home/kitchen', plain);
    assert.equal(sealed.length, plain.length + SEALED_OVERHEAD);
    assert.equal(sealed[0], SEALED_FORMAT);
    assert.equal(sealed[1], 1);
    assert.ok(!sealed.includes(plain), 'the plaintext does not appear');
    assert.deepEqual(cipher.open('payload', 'home/kitchen', sealed), plain);
    assert.notDeepEqual(cipher.seal('payload', 'home/kitchen', plain), sealed, 'a random nonce per record');
    assert.deepEqual(cipher.open('payload', 't', cipher.seal('payload', 't', Buffer.alloc(0))), Buffer.alloc(0));
  });

  it('a changed byte anywhere (header, nonce, ciphertext, tag) does not open', () => {
    const sealed = cipher.seal('payload', 'a/b', Buffer.from('open the valve'));
    for (const at of [2, 14, 16, sealed.length - 1]) {
      const tampered = Buffer.from(sealed);
      tampered[at]! ^= 0x01;
      assert.throws(() => cipher.open('payload', 'a/b', tampered), AtRestError, `byte ${at}`);
    }
  });

  it('a sealed value does not open under another topic, nor as the other part of its record', () => {
    const sealed = cipher.seal('payload', 'valves/1/open', Buffer.from('yes'));
    assert.throws(() => cipher.open('payload', 'valves/2/open', sealed), /does not authenticate/);
    assert.throws(() => cipher.open('properties', 'valves/1/open', sealed), /does not authenticate/);
  });

  it('a record under a key id the file does not hold is refused, naming the key id and the file', () => {
    const other = new AtRestCipher(parseAtRestKeys(`7:${KEY_B}\n`, FILE));
    const sealed = other.seal('payload', 't', Buffer.from('x'));
    assert.throws(() => cipher.open('payload', 't', sealed), (err: Error) => err instanceof AtRestError && /key id 7/.test(err.message) && err.message.includes(FILE));
  });

  it('new keys: the last line seals; keys no longer in the file stay readable in memory', () => {
    const rotating = new AtRestCipher(parseAtRestKeys(`1:${KEY_A}\n`, FILE));
    const old = rotating.seal('payload', 't', Buffer.from('before'));
    assert.equal(rotating.differs(parseAtRestKeys(`1:${KEY_A}\n`, FILE)), false);
    assert.deepEqual(rotating.use(parseAtRestKeys(`2:${KEY_B}\n`, FILE)), [1]);
    assert.equal(rotating.currentKeyId, 2);
    assert.equal(rotating.seal('payload', 't', Buffer.from('after'))[1], 2);
    assert.equal(rotating.open('payload', 't', old).toString(), 'before');
  });

  it('a key id names one key for good: a file giving an id in force another key is refused, the keys in force stay', () => {
    const cipher = new AtRestCipher(parseAtRestKeys(`1:${KEY_A}\n`, FILE));
    const sealed = cipher.seal('payload', 't', Buffer.from('kept'));
    assert.throws(() => cipher.use(parseAtRestKeys(`1:${KEY_B}\n`, FILE)), (err: Error) => err instanceof AtRestError && /key id 1 holds another key/.test(err.message));
    assert.equal(cipher.open('payload', 't', sealed).toString(), 'kept');
    assert.equal(cipher.currentKeyId, 1);
  });

  it('stored rows: payload and properties (user properties, correlation data) sealed; a plain row starting with 0xE5 stays plain', () => {
    const message = {
      topic: 'm/1', payload: Buffer.from('MARKER-payload'), qos: 1 as const, retain: false,
      properties: { userProperties: [['note', 'MARKER-user']] as Array<[string, string]>, correlationData: Buffer.from('MARKER-corr') },
    };
    const row = messageToRow(message, cipher);
    assert.equal(row.key_id, 1);
    assert.ok(Buffer.isBuffer(row.props));
    assert.ok(!JSON.stringify(row).includes('MARKER') && !(row.props as Buffer).includes('MARKER') && !row.payload.includes('MARKER'));
    assert.deepEqual(rowToMessage(row, cipher), message);
    const json = messageToJson(message, cipher);
    assert.ok(!json.includes('MARKER') && !json.includes(Buffer.from('MARKER').toString('base64').slice(0, 6)));
    assert.deepEqual(messageFromJson(json, cipher), message);
    assert.throws(() => rowToMessage(row), /store\.encryption is not configured/);

    const lookalike = { topic: 'p', payload: cipher.seal('payload', 'p', Buffer.from('x')), qos: 0 as const, retain: false };
    assert.deepEqual(rowToMessage(messageToRow(lookalike), cipher), lookalike, 'a plain payload that looks sealed is read as it is');
  });
});

describe('encryption at rest: the key file', () => {
  it('reads keyid:hexkey lines; the last one is current; comments and blank lines skipped', () => {
    const keys = parseAtRestKeys(`# store keys\n\n3:${KEY_A}\n 200 : ${KEY_B.toUpperCase()} \n`, FILE);
    assert.deepEqual([...keys.byId.keys()], [3, 200]);
    assert.equal(keys.currentId, 200);
    assert.ok(!JSON.stringify(keys).includes('1111'), 'serialises to a digest');
  });

  const mistakes: Array<[string, RegExp]> = [
    [`x:${KEY_A}`, /:1: the key id must be a whole number from 0 to 255/],
    [`256:${KEY_A}`, /:1: the key id must be/],
    [`1:${KEY_A}\n1:${KEY_B}`, /:2: key id 1 appears twice/],
    [`# c\n1:${KEY_A.slice(2)}`, /:2: the key of key id 1 has 62 hexadecimal digits/],
    [`1:${KEY_A.slice(2)}zz`, /:1: the key of key id 1 is not hexadecimal/],
    [`1:2:${KEY_A}`, /:1: expected "keyid:hexkey", found 2 colons/],
    ['# only a comment\n', /holds no key/],
  ];
  for (const [text, expected] of mistakes) {
    it(`refuses ${JSON.stringify(text.slice(0, 12))}…, naming the file and line, never the key`, () => {
      assert.throws(() => parseAtRestKeys(text, FILE), (err: Error) => {
        assert.ok(err instanceof AtRestKeyFileError);
        assert.ok(err.message.startsWith(FILE), err.message);
        assert.match(err.message, expected);
        assert.ok(!/[0-9a-f]{16}/i.test(err.message), `no key in ${err.message}`);
        return true;
      });
    });
  }
});

describe('encryption at rest: the configuration', () => {
  it('store.encryption.key_file is read at load: a bad line is a configuration error at that key, naming the key file and its line', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moat-at-rest-config-'));
    try {
      const keys = path.join(dir, 'store.keys');
      const config = path.join(dir, 'moat.yaml');
      const yaml = 'listeners:\n  - port: 1883\nstore:\n  directory: ./data\n  encryption:\n    key_file: store.keys\n';
      writeFileSync(keys, `# keys\n1:${KEY_A}\n2:${KEY_B.slice(4)}\n`);
      assert.throws(() => parseConfig(yaml, config), (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.line, 6);
        assert.equal(err.key, 'store.encryption.key_file');
        assert.equal(err.problem, `${keys}:3: the key of key id 2 has 60 hexadecimal digits; it must have exactly 64 (32 bytes)`);
        return true;
      });
      writeFileSync(keys, `1:${KEY_A}\n`);
      const loaded = parseConfig(yaml, config);
      assert.deepEqual(loaded.store, { type: 'sqlite', directory: path.join(dir, 'data'), durability: 'strict', flushIntervalMs: undefined, encryption: { keyFile: keys } });
      assert.throws(() => parseConfig(`store:\n  type: memory\n  encryption:\n    key_file: store.keys\n`, config), /store\.encryption: only means something with the sqlite or redis store/);
      rmSync(keys);
      assert.throws(() => parseConfig(yaml, config), (err: Error) => err instanceof ConfigError && err.key === 'store.encryption.key_file' && err.message.includes(keys));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
