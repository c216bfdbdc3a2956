import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { createEntry, formatEntry, parsePasswordFile } from '../security/password-file.js';

/**
 * `moat passwd [-D] [--force] <file> <user>`: adds or updates a user in a Moat
 * password file (scrypt hash and SCRAM-SHA-256 keys), or deletes it. The
 * password is read twice without echo from a terminal, or once (the first
 * line) from standard input for scripts; one shorter than 8 characters is
 * refused unless `--force` is given. The file is replaced atomically, so a
 * broker watching it never reads half a file; other lines (comments, Mosquitto
 * entries) are kept as they are.
 */

const USAGE = `usage: moat passwd [-D] [--force] <file> <user>
  -D       delete the user
  --force  accept a password shorter than 8 characters`;

/** Shorter passwords are refused unless --force is given (counted in characters, not bytes). */
const MIN_PASSWORD_LENGTH = 8;

function fail(message: string): number {
  process.stderr.write(`moat passwd: ${message}\n`);
  return 1;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Typed ahead of the next prompt (a terminal may deliver both lines at once). */
let typedAhead = '';

/** One line typed at the terminal, not echoed. */
function readHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const input = process.stdin;
    // Echo off before the prompt shows: what is typed as soon as it appears must not be echoed.
    input.setRawMode(true);
    process.stderr.write(prompt);
    let typed = '';
    const onData = (data: Buffer | string): void => {
      const chars = [...data.toString()];
      for (let i = 0; i < chars.length; i++) {
        const ch = chars[i]!;
        if (ch === '\r' || ch === '\n') {
          typedAhead = chars.slice(i + 1).join('').replace(/^\n/, '');
          done();
          resolve(typed);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new Error('interrupted'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    const done = (): void => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
    };
    input.on('data', onData);
    input.resume();
    if (typedAhead !== '') {
      const ahead = typedAhead;
      typedAhead = '';
      onData(ahead);
    }
  });
}

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const text = await readStdin();
    const newline = text.search(/\r?\n/);
    return newline === -1 ? text : text.slice(0, newline);
  }
  const first = await readHidden('Password: ');
  const second = await readHidden('Reenter password: ');
  if (first !== second) throw new Error('the passwords do not match');
  return first;
}

/** Writes beside the target, syncs, renames over it, syncs the directory. */
function writeAtomically(file: string, text: string): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = openSync(temp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  const dir = openSync(path.dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

export async function runPasswd(args: string[]): Promise<number> {
  let remove = false;
  let force = false;
  let at = 0;
  for (; at < args.length && args[at]!.startsWith('-'); at++) {
    if (args[at] === '-D') remove = true;
    else if (args[at] === '--force') force = true;
    else return fail(USAGE);
  }
  const rest = args.slice(at);
  if (rest.length !== 2 || rest.some((a) => a.startsWith('-'))) return fail(USAGE);
  const [file, username] = rest as [string, string];
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  let users;
  try {
    users = parsePasswordFile(text, file);
  } catch (err) {
    return fail((err as Error).message);
  }
  const lines = text === '' ? [] : text.replace(/\r?\n$/, '').split(/\r?\n/);
  const index = lines.findIndex((line) => !line.trim().startsWith('#') && line.trim().split(':')[0] === username);

  if (remove) {
    if (!users.has(username)) return fail(`${file}: no user "${username}"`);
    lines.splice(index, 1);
  } else {
    let password: string;
    try {
      password = await readPassword();
    } catch (err) {
      return fail((err as Error).message);
    }
    let line: string;
    try {
      // createEntry refuses a bad user name and an empty password first, with their own messages.
      line = formatEntry(await createEntry(username, Buffer.from(password, 'utf8')));
    } catch (err) {
      return fail((err as Error).message);
    }
    const length = [...password].length;
    if (length < MIN_PASSWORD_LENGTH && !force) {
      const counted = `${length} ${length === 1 ? 'character' : 'characters'}`;
      return fail(`the password is too short: ${counted}, at least ${MIN_PASSWORD_LENGTH} are needed; ${file} is unchanged (--force sets it anyway)`);
    }
    if (index === -1) lines.push(line);
    else lines[index] = line;
  }
  try {
    writeAtomically(file, lines.length === 0 ? '' : `${lines.join('\n')}\n`);
  } catch (err) {
    return fail(`${file}: ${(err as Error).message}`);
  }
  process.stderr.write(`moat passwd: ${remove ? 'deleted' : index === -1 ? 'added' : 'updated'} ${username} in ${file}\n`);
  return 0;
}
