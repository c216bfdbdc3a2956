import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PayloadKeyFileError, parsePayloadKeys } from '../../src/payload/keys.js';

/** The payload key file: `identity:keyid:hexkey` or `identity:hexkey` per line (docs/payload-encryption.md). */

const KEY_A = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
const KEY_B = 'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100';
const KEY_C = 'A0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF';

describe('payload key file', () => {
  it('reads both line forms, with comments, blank lines, CRLF and spaces around lines', () => {
    const keys = parsePayloadKeys([
      '# payload keys',
      '',
      `sensor-1:${KEY_A}`,
      `sensor-1:7:${KEY_B}`,
      '   ',
      `  sensor 2/kitchen:255:${KEY_C}  `,
      '\t# indented comment',
      `sensor-3:007:${KEY_A}\r`,
    ].join('\n'), 'keys.txt');
    assert.equal(keys.size, 3);
    assert.equal(keys.get('sensor-1', 0)?.toString('hex'), KEY_A);
    assert.equal(keys.get('sensor-1', 7)?.toString('hex'), KEY_B);
    assert.equal(keys.get('sensor 2/kitchen', 255)?.toString('hex'), KEY_C.toLowerCase());
    assert.equal(keys.get('sensor-3', 7)?.toString('hex'), KEY_A, 'leading zeros in a key id');
    assert.equal(keys.get('sensor-1', 1), undefined);
    assert.equal(keys.get('nobody', 0), undefined);
    assert.ok(keys.has('sensor-1') && keys.has('sensor-3') && !keys.has('sensor-2') && !keys.has(''));
    assert.deepEqual([...keys.identities()], ['sensor-1', 'sensor 2/kitchen', 'sensor-3']);
    assert.equal(parsePayloadKeys('# nothing\n\n', 'empty.txt').size, 0);
  });

  it('serialises to a digest that follows the contents and shows no key', () => {
    const one = parsePayloadKeys(`a:${KEY_A}\nb:3:${KEY_B}\n`, 'one');
    const reordered = parsePayloadKeys(`# same keys\nb:3:${KEY_B}\na:0:${KEY_A}\n`, 'two');
    const changed = parsePayloadKeys(`a:${KEY_A}\nb:4:${KEY_B}\n`, 'three');
    assert.equal(JSON.stringify(one), JSON.stringify(reordered));
    assert.notEqual(JSON.stringify(one), JSON.stringify(changed));
    assert.match(JSON.stringify(one), /^"payload-keys:[A-Za-z0-9_-]+"$/);
  });

  const errors: Array<[string, string, string]> = [
    ['no colon', KEY_A, 'expected "identity:keyid:hexkey" or "identity:hexkey", found 0 colons'],
    ['too many colons', `a:b:1:${KEY_A}`, 'expected "identity:keyid:hexkey" or "identity:hexkey", found 3 colons (an identity may not contain ":")'],
    ['empty identity', `:${KEY_A}`, 'the identity is empty'],
    ['empty identity with a key id', `:1:${KEY_A}`, 'the identity is empty'],
    ['spaces around the identity', `dev :1:${KEY_A}`, 'the identity has spaces around it'],
    ['key id above 255', `dev:256:${KEY_A}`, 'the key id of "dev" is not a whole number from 0 to 255'],
    ['negative key id', `dev:-1:${KEY_A}`, 'the key id of "dev" is not a whole number from 0 to 255'],
    ['key id not a number', `dev:x:${KEY_A}`, 'the key id of "dev" is not a whole number from 0 to 255'],
    ['empty key id', `dev::${KEY_A}`, 'the key id of "dev" is not a whole number from 0 to 255'],
    ['missing key', 'dev:3:', 'the key of "dev" (key id 3) is missing'],
    ['missing key, no key id', 'dev:', 'the key of "dev" (key id 0) is missing'],
    ['0x prefix', `dev:0x${KEY_A.slice(2)}`, 'the key of "dev" (key id 0) starts with 0x: write the hexadecimal digits only'],
    ['not hexadecimal', `dev:1:${KEY_A.slice(1)}g`, 'the key of "dev" (key id 1) is not hexadecimal'],
    ['too short', `dev:${KEY_A.slice(2)}`, 'the key of "dev" (key id 0) has 62 hexadecimal digits; it must have exactly 64 (32 bytes)'],
    ['too long', `dev:${KEY_A}00`, 'the key of "dev" (key id 0) has 66 hexadecimal digits; it must have exactly 64 (32 bytes)'],
    ['a 16-byte key', `dev:${KEY_A.slice(32)}`, 'the key of "dev" (key id 0) has 32 hexadecimal digits; it must have exactly 64 (32 bytes)'],
  ];

  for (const [what, line, problem] of errors) {
    it(`refuses ${what}, naming file and line`, () => {
      const text = `# keys\n\nfine:${KEY_B}\n${line}\nlater:${KEY_C}\n`;
      assert.throws(() => parsePayloadKeys(text, '/etc/moat/payload.keys'), (error: unknown) => {
        assert.ok(error instanceof PayloadKeyFileError);
        assert.equal(error.file, '/etc/moat/payload.keys');
        assert.equal(error.line, 4);
        assert.equal(error.problem, problem);
        assert.equal(error.message, `/etc/moat/payload.keys:4: ${problem}`);
        return true;
      });
    });
  }

  it('refuses an (identity, key id) given twice, naming the second line; key id 0 written both ways counts as one', () => {
    for (const [second, keyId] of [[`dev:1:${KEY_B}`, 1], [`dev:0:${KEY_B}`, 0]] as const) {
      const first = keyId === 0 ? `dev:${KEY_A}` : `dev:1:${KEY_A}`;
      assert.throws(() => parsePayloadKeys(`${first}\nother:1:${KEY_A}\n${second}\n`, 'k'), (error: unknown) => {
        assert.ok(error instanceof PayloadKeyFileError);
        assert.equal(error.message, `k:3: "dev" has key id ${keyId} twice`);
        return true;
      });
    }
  });

  it('never puts a key in an error, even one written where the identity or key id belongs', () => {
    const misplaced = [
      `${KEY_A}:dev`, // key first
      `${KEY_A}:1:dev`,
      `dev:${KEY_A}:1`, // key where the key id belongs
      `dev:${KEY_A}:${KEY_B}`,
      `${KEY_A}:${KEY_A}:${KEY_B}`,
      `dev:${KEY_A.slice(0, 60)}zz`, // wrong key, still close to the real one
      `${KEY_A}:0x${KEY_B}`,
      `${KEY_A}:${KEY_B}\n${KEY_A}:${KEY_B}`, // duplicate
    ];
    for (const text of misplaced) {
      assert.throws(() => parsePayloadKeys(text, 'k'), (error: unknown) => {
        assert.ok(error instanceof PayloadKeyFileError, text);
        for (const key of [KEY_A, KEY_B, KEY_A.slice(0, 32), KEY_B.slice(0, 32)]) {
          assert.ok(!error.message.includes(key), `${JSON.stringify(text)} -> ${error.message}`);
        }
        return true;
      });
    }
  });
});
