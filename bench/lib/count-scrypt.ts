/**
 * Preloaded into a broker under measurement (`node --import .../count-scrypt.js moat.js ...`): counts the
 * scrypt derivations the process makes (each is one password check that hashed), and on SIGUSR2 writes
 * `<sequence> <count>` to the file named by MOAT_SCRYPT_COUNT_FILE. The broker itself is unchanged: the
 * wrapper calls the original, and ES module imports of node:crypto see it through syncBuiltinESMExports.
 */
import { writeFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
type AnyFunction = (...args: unknown[]) => unknown;
const crypto = require('node:crypto') as Record<'scrypt' | 'scryptSync', AnyFunction>;
const scrypt = crypto.scrypt;
const scryptSync = crypto.scryptSync;
let calls = 0;
let sequence = 0;
crypto.scrypt = function countedScrypt(this: unknown, ...args: unknown[]): unknown {
  calls++;
  return scrypt.apply(this, args);
};
crypto.scryptSync = function countedScryptSync(this: unknown, ...args: unknown[]): unknown {
  calls++;
  return scryptSync.apply(this, args);
};
syncBuiltinESMExports();

const file = process.env.MOAT_SCRYPT_COUNT_FILE;
process.on('SIGUSR2', () => {
  if (file) writeFileSync(file, `${++sequence} ${calls}\n`);
});
