import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_ADMIN_PORT } from '../../admin/options.js';
import { UsageError } from './command.js';
import type { Connection, Credentials } from './http.js';
import { canPrompt, readHidden } from './prompt.js';

/**
 * Where the admin API is and who `moat ctl` is there. Each setting comes from the first of: the command line, the
 * environment (MOAT_URL, MOAT_TOKEN, MOAT_USER, MOAT_PASSWORD), the ctl config file (--ctl-config, MOAT_CTL_CONFIG,
 * or ~/.config/moat/ctl.yaml when it exists), and the default http://127.0.0.1:18083. `-c moat.yaml` reads the
 * URL from the broker's own `admin:` section and counts as the command line. Credentials are taken whole from
 * the first place that has any: a token, or a user name (whose password is MOAT_PASSWORD, the file's for the same
 * user, or asked for on a terminal).
 */

export const DEFAULT_URL = `http://127.0.0.1:${DEFAULT_ADMIN_PORT}`;

export interface EndpointFlags {
  url?: string;
  token?: string;
  user?: string;
  ctlConfig?: string;
  brokerConfig?: string;
  ca?: string;
  insecure?: boolean;
}

export interface Endpoint {
  connection: Connection;
  /** Where the credentials came from, for the advice after a 401 or 403; undefined when there are none. */
  credentialsFrom: string | undefined;
  /** The ctl config file read, if any. */
  configFile: string | undefined;
}

interface CtlFile {
  path: string;
  url?: string;
  token?: string;
  user?: string;
  password?: string;
  /** Resolved against the file's directory. */
  ca?: string;
  insecure?: boolean;
}

const FILE_KEYS = ['url', 'token', 'token_file', 'user', 'password', 'ca', 'insecure'];

/** A value from the environment; an empty one counts as unset. */
const env = (name: string): string | undefined => process.env[name] || undefined;

/** The ctl config file named, or the default one when it exists. */
export function ctlFilePath(flag: string | undefined): { file: string; required: boolean } | undefined {
  const named = flag ?? env('MOAT_CTL_CONFIG');
  if (named !== undefined) return { file: named, required: true };
  const base = env('XDG_CONFIG_HOME') ?? path.join(homedir(), '.config');
  const file = path.join(base, 'moat', 'ctl.yaml');
  return existsSync(file) ? { file, required: false } : undefined;
}

function readCtlFile(file: string, warn: (message: string) => void): CtlFile {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the ctl config file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let data: unknown;
  try {
    data = parseYaml(source) ?? {};
  } catch (err) {
    throw new UsageError(`${file}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new UsageError(`${file}: expected keys (${FILE_KEYS.join(', ')})`);
  const entries = data as Record<string, unknown>;
  for (const key of Object.keys(entries)) if (!FILE_KEYS.includes(key)) throw new UsageError(`${file}: unknown key "${key}"; expected ${FILE_KEYS.join(', ')}`);
  const string = (key: string): string | undefined => {
    const value = entries[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' && typeof value !== 'number') throw new UsageError(`${file}: ${key}: expected a string`);
    return String(value);
  };
  if (entries.insecure !== undefined && typeof entries.insecure !== 'boolean') throw new UsageError(`${file}: insecure: expected true or false`);
  const here = path.dirname(path.resolve(file));
  let token = string('token');
  const tokenFile = string('token_file');
  if (token !== undefined && tokenFile !== undefined) throw new UsageError(`${file}: token and token_file: give one`);
  if (tokenFile !== undefined) {
    try {
      token = readFileSync(path.resolve(here, tokenFile), 'utf8').split(/\r?\n/)[0]!.trim();
    } catch (err) {
      throw new UsageError(`${file}: token_file: cannot read ${tokenFile}: ${(err as Error).message}`);
    }
  }
  const user = string('user');
  if (token !== undefined && user !== undefined) throw new UsageError(`${file}: token and user: give one (a token, or an admin user with its password)`);
  const password = string('password');
  if (token !== undefined || password !== undefined) warnIfReadable(file, warn);
  const ca = string('ca');
  return {
    path: file, url: string('url'), token, user, password,
    ...(ca !== undefined && { ca: path.resolve(here, ca) }), ...(entries.insecure === true && { insecure: true }),
  };
}

/** As ssh does for a key file, but going on: a secret in a file others can read is no longer a secret. */
function warnIfReadable(file: string, warn: (message: string) => void): void {
  if (process.platform === 'win32') return;
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) warn(`${file} holds a secret and others can read it (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 ${file}`);
}

/** The admin listener's URL from the broker's own configuration file: its `admin:` host, port and TLS. */
export function urlFromBrokerConfig(file: string): string {
  let data: { admin?: { host?: unknown; port?: unknown; tls?: unknown } } | null;
  try {
    data = parseYaml(readFileSync(file, 'utf8')) as typeof data;
  } catch (err) {
    throw new UsageError(`-c ${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  const admin = data?.admin;
  if (!admin) throw new UsageError(`-c ${file}: no admin: section, so the broker has no admin listener (docs/operations.md)`);
  let host = typeof admin.host === 'string' ? admin.host : '127.0.0.1';
  // Bound on every address: reach it on this machine's loopback.
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
  if (host === '::') host = '::1';
  const port = typeof admin.port === 'number' ? admin.port : DEFAULT_ADMIN_PORT;
  return `${admin.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function parseUrl(raw: string, from: string): URL {
  // A bare host:port is meant as http.
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${from}: "${raw}" is not a URL (such as ${DEFAULT_URL})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${from}: "${raw}": expected an http:// or https:// URL`);
  return url;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/i;

export async function resolveEndpoint(flags: EndpointFlags, warn: (message: string) => void): Promise<Endpoint> {
  const located = ctlFilePath(flags.ctlConfig);
  const file = located && readCtlFile(located.file, warn);
  if (flags.token !== undefined && flags.user !== undefined) throw new UsageError('--token and --user: give one');

  const urlSources: Array<[string | undefined, string]> = [
    [flags.url, '--url'],
    [flags.brokerConfig === undefined ? undefined : urlFromBrokerConfig(flags.brokerConfig), `-c ${flags.brokerConfig ?? ''}`],
    [env('MOAT_URL'), 'MOAT_URL'],
    [file?.url, `${file?.path ?? ''}: url`],
  ];
  const [rawUrl, urlFrom] = urlSources.find(([value]) => value !== undefined) ?? [DEFAULT_URL, 'the default'];
  const url = parseUrl(rawUrl!, urlFrom);

  const credentialSources = [
    { from: flags.token !== undefined ? '--token' : '--user', token: flags.token, user: flags.user },
    { from: env('MOAT_TOKEN') !== undefined ? 'MOAT_TOKEN' : 'MOAT_USER', token: env('MOAT_TOKEN'), user: env('MOAT_USER') },
    { from: file?.path ?? '', token: file?.token, user: file?.user },
  ];
  const chosen = credentialSources.find((s) => s.token !== undefined || s.user !== undefined);
  let credentials: Credentials | undefined;
  if (chosen?.token !== undefined) credentials = { kind: 'bearer', token: chosen.token };
  else if (chosen?.user !== undefined) credentials = { kind: 'basic', user: chosen.user, password: await passwordFor(chosen.user, file) };
  if (credentials && url.protocol === 'http:' && !LOOPBACK.test(url.hostname)) {
    warn(`sending credentials over plain http to ${url.host}: anyone on the way can read them; use https (admin.tls)`);
  }

  let ca: Buffer | undefined;
  const caFile = flags.ca ?? file?.ca;
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile);
    } catch (err) {
      throw new UsageError(`cannot read the CA file ${caFile}: ${(err as Error).message}`);
    }
  }
  return {
    connection: { url, ...(credentials && { credentials }), ...(ca && { ca }), ...((flags.insecure === true || file?.insecure === true) && { insecure: true }) },
    credentialsFrom: chosen?.from,
    configFile: file?.path,
  };
}

async function passwordFor(user: string, file: CtlFile | undefined): Promise<string> {
  const password = env('MOAT_PASSWORD') ?? (file?.user === user ? file.password : undefined);
  if (password !== undefined) return password;
  if (canPrompt()) return readHidden(`Password for ${user}: `);
  throw new UsageError(`no password for the admin user ${user}: set MOAT_PASSWORD (standard input is not a terminal to ask on)`);
}
