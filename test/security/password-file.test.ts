import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  createEntry, formatEntry, parsePasswordFile, PasswordFileError, verifyPassword,
} from '../../src/security/password-file.js';
import { run } from '../helpers/process.js';

const FAST = { logN: 10, r: 8, p: 1 }; // cheap parameters: these tests check the format, not the cost

describe('password files: Moat format', () => {
  it('a created entry verifies its password only, and survives formatting and parsing', async () => {
    const entry = await createEntry('alice', Buffer.from('correct horse'), FAST);
    const line = formatEntry(entry);
    assert.match(line, /^alice:scrypt\$10\$8\$1\$[^:]+:scram-sha-256\$4096\$/);
    const parsed = parsePasswordFile(`# users\n\n${line}\n`, 'pw').get('alice')!;
    assert.deepEqual(parsed, entry);
    assert.equal(await verifyPassword(parsed.hash, Buffer.from('correct horse')), true);
    assert.equal(await verifyPassword(parsed.hash, Buffer.from('correct horsf')), false);
    assert.equal(await verifyPassword(parsed.hash, Buffer.alloc(0)), false);
  });

  it('two entries for the same password have different salts and hashes', async () => {
    const [a, b] = await Promise.all([createEntry('a', Buffer.from('same'), FAST), createEntry('b', Buffer.from('same'), FAST)]);
    assert.notDeepEqual(a.hash, b.hash);
  });

  it('refuses user names with ":" or line breaks', async () => {
    await assert.rejects(createEntry('a:b', Buffer.from('x'), FAST), /user name/);
    await assert.rejects(createEntry('a\nb', Buffer.from('x'), FAST), /user name/);
  });

  it('errors name the file and line', () => {
    const salt = 'c3Nzc3Nzc3Nzc3Nz';
    const hash = 'aGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaA==';
    const key = 'a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=';
    const cases: Array<[string, RegExp]> = [
      [`ok:$7$101$${salt}$${hash}\nnocolon\n`, /^pw:2: expected/],
      [`x:$7$abc$${salt}$${hash}\n`, /^pw:1: user "x": iterations/],
      [`x:scrypt$15$8$1$!!!$${hash}\n`, /^pw:1: user "x": salt is not base64/],
      ['x:md5$whatever\n', /^pw:1: user "x": unknown credential format/],
      [`x:$7$101$${salt}$${hash}\nx:$7$101$${salt}$${hash}\n`, /^pw:2: user "x" appears twice/],
      [`x:scram-sha-256$4096$${salt}$${key}$${key}\n`, /^pw:1: user "x" has no password hash/],
      // A truncated or empty hash must never verify anything: refused when read.
      [`x:$7$101$${salt}$=\n`, /^pw:1: user "x": hash is not base64|hash must be 64 bytes/],
      [`x:$7$101$${salt}$aGFzaA==\n`, /^pw:1: user "x": hash must be 64 bytes, not 4/],
      [`x:$6$${salt}$aA==\n`, /^pw:1: user "x": hash must be 64 bytes/],
    ];
    for (const [text, expected] of cases) {
      assert.throws(() => parsePasswordFile(text, 'pw'), (err: unknown) => err instanceof PasswordFileError && expected.test(err.message), text);
    }
  });
});

describe('password files: made by the real mosquitto_passwd', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-pw-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads $7$ (PBKDF2-SHA512) entries and verifies the passwords mosquitto_passwd was given', async () => {
    const file = path.join(dir, 'mosquitto.pw');
    for (const [i, [user, password]] of [['alice', 'secret one'], ['bob', 'pa:ss wörd'], ['carol', '']].entries()) {
      const result = await run('mosquitto_passwd', [...(i === 0 ? ['-c'] : []), '-b', file, user!, password!]);
      assert.equal(result.code, 0, `mosquitto_passwd ${user}: ${result.stderr}`);
    }
    const users = parsePasswordFile(readFileSync(file, 'utf8'), file);
    assert.deepEqual([...users.keys()], ['alice', 'bob', 'carol']);
    assert.equal(users.get('alice')!.hash.kind, 'mosquitto-pbkdf2');
    assert.equal(await verifyPassword(users.get('alice')!.hash, Buffer.from('secret one')), true);
    assert.equal(await verifyPassword(users.get('alice')!.hash, Buffer.from('secret two')), false);
    assert.equal(await verifyPassword(users.get('bob')!.hash, Buffer.from('pa:ss wörd')), true);
    assert.equal(await verifyPassword(users.get('carol')!.hash, Buffer.alloc(0)), true);
    assert.equal(await verifyPassword(users.get('carol')!.hash, Buffer.from('x')), false);
  });
});
