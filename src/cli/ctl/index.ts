import { parseArgs, type ParseArgsConfig } from 'node:util';
import { broker, healthResource, metricsResource } from './broker.js';
import { bans } from './bans.js';
import { events } from './events.js';
import { clients, sessions } from './clients.js';
import { UsageError, type Command, type CommandContext, type OptionSpec, type OptionValues, type Outcome, type Resource } from './command.js';
import { resolveEndpoint, DEFAULT_URL } from './endpoint.js';
import { ApiClient, ApiError, UnreachableError } from './http.js';
import { groups, roles, users } from './runtime.js';
import { retained, subscriptions, topics } from './topics.js';

/**
 * `moat ctl <resource> <command> [arguments] [options]`: the admin REST API from a shell (docs/operations.md).
 * Options before the resource are `moat ctl`'s own (endpoint, credentials, --json); after the command, the
 * command's, which win where a name is both (`clients list --user` filters by user name). Exit status: 0, 1 when
 * the API or the connection failed, 2 for a mistake on the command line.
 */

export const RESOURCES: readonly Resource[] = [clients, sessions, subscriptions, topics, retained, bans, events, users, groups, roles, broker, healthResource, metricsResource];

const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec & { short?: string }>> = {
  url: { type: 'string', value: 'URL', help: `the admin listener (MOAT_URL; default ${DEFAULT_URL})` },
  token: { type: 'string', value: 'TOKEN', help: 'an API token (MOAT_TOKEN)' },
  user: { type: 'string', value: 'NAME', help: 'an admin user, its password from MOAT_PASSWORD or asked for (MOAT_USER)' },
  'ctl-config': { type: 'string', value: 'FILE', help: 'url, token or user/password, ca, insecure (MOAT_CTL_CONFIG; default ~/.config/moat/ctl.yaml)' },
  config: { type: 'string', short: 'c', value: 'FILE', help: 'the broker\'s configuration: its admin: section gives the URL' },
  ca: { type: 'string', value: 'FILE', help: 'CA certificates to trust for https' },
  insecure: { type: 'boolean', help: 'https without checking the certificate' },
  json: { type: 'boolean', help: 'print the API\'s JSON, for scripts' },
  'page-size': { type: 'string', value: 'N', help: 'items per request while paging through a list (1-1000, default 1000)' },
  help: { type: 'boolean', short: 'h', help: 'show help' },
};

const MAX_PAGE = 1000;

function optionLines(options: Readonly<Record<string, OptionSpec & { short?: string }>>): string[] {
  const shown = Object.entries(options).map(([name, o]) => [`${o.short ? `-${o.short}, ` : '    '}--${name}${o.value ? ` ${o.value}` : ''}`, o.help + (o.multiple ? ' (repeatable)' : '')] as const);
  const width = Math.max(...shown.map(([left]) => left.length));
  return shown.map(([left, help]) => `  ${left.padEnd(width)}  ${help}`);
}

function mainHelp(): string {
  const width = Math.max(...RESOURCES.map((r) => r.name.length));
  return [
    'moat ctl: manage a running broker through its admin API',
    '',
    'Usage: moat ctl [options] <resource> <command> [arguments] [command options]',
    '',
    'Resources:',
    ...RESOURCES.map((r) => `  ${r.name.padEnd(width)}  ${r.summary}`),
    '',
    'Options:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    'Each setting comes from the first of: the command line, the environment (MOAT_URL, MOAT_TOKEN, MOAT_USER,',
    'MOAT_PASSWORD), the ctl config file, the default. Examples:',
    '  moat ctl clients list',
    '  moat ctl clients kick sensor-1',
    '  moat ctl bans add 10.0.0.0/8 --for 1h --reason scanner',
    '  moat ctl users add dave --role sensors',
    '  moat ctl --json sessions list --state offline',
    '',
    'moat ctl <resource> --help lists its commands. Exit status: 0; 1 when the API refused or could not be reached; 2 for a usage mistake.',
  ].join('\n');
}

function usageOf(resource: Resource, command: Command): string {
  return `moat ctl ${resource.name}${command.name ? ` ${command.name}` : ''}${command.args ? ` ${command.args}` : ''}${command.options ? ' [options]' : ''}`;
}

function resourceHelp(resource: Resource): string {
  const lines = [`moat ctl ${resource.name}: ${resource.summary}`, ''];
  for (const command of resource.commands) {
    lines.push(`  ${usageOf(resource, command)}`, `      ${command.summary}`);
    if (command.options) lines.push(...optionLines(command.options).map((l) => `    ${l}`));
    lines.push('');
  }
  lines.push('moat ctl\'s own options (--url, --token, --json, ...) go before the resource or after the command; where the command has', 'an option of the same name (clients list --user), put moat ctl\'s before the resource. moat ctl --help lists them.');
  return lines.join('\n');
}

/** parseArgs' shape of our option specs. */
function parseConfig(options: Readonly<Record<string, OptionSpec & { short?: string }>>): NonNullable<ParseArgsConfig['options']> {
  return Object.fromEntries(Object.entries(options).map(([name, o]) => [name, { type: o.type, ...(o.multiple && { multiple: true }), ...(o.short && { short: o.short }) }]));
}

const takesValue = (arg: string): boolean => {
  if (arg.includes('=')) return false;
  const long = arg.startsWith('--') ? arg.slice(2) : Object.entries(GLOBAL_OPTIONS).find(([, o]) => o.short && arg === `-${o.short}`)?.[0];
  return long !== undefined && GLOBAL_OPTIONS[long]?.type === 'string';
};

interface Parsed {
  resource: Resource;
  command: Command;
  global: OptionValues;
  context: Omit<CommandContext, 'api' | 'pageSize' | 'json'>;
}

/** The first two words that are not `moat ctl`'s own options (nor their values): the resource and the command. */
function words(args: string[]): number[] {
  const found: number[] = [];
  for (let i = 0; i < args.length && found.length < 2; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    if (arg.startsWith('-') && arg !== '-') {
      if (takesValue(arg)) i++;
      continue;
    }
    found.push(i);
  }
  return found;
}

class HelpShown extends Error {
  constructor(readonly text: string, readonly exitCode: number) {
    super(text);
  }
}

function parse(args: string[]): Parsed {
  const [resourceAt, commandAt] = words(args);
  const helpAsked = (part: string[]): boolean => part.includes('--help') || part.includes('-h');
  if (resourceAt === undefined) throw new HelpShown(mainHelp(), helpAsked(args) ? 0 : 2);
  const resource = RESOURCES.find((r) => r.name === args[resourceAt]);
  if (!resource) throw new UsageError(`unknown resource "${args[resourceAt]}"; expected ${RESOURCES.map((r) => r.name).join(', ')} (moat ctl --help)`);
  let command: Command | undefined;
  let rest: number;
  if (resource.commands.length === 1 && resource.commands[0]!.name === '') {
    command = resource.commands[0]!;
    rest = resourceAt + 1;
  } else {
    if (commandAt === undefined) throw new HelpShown(resourceHelp(resource), helpAsked(args) ? 0 : 2);
    command = resource.commands.find((c) => c.name === args[commandAt]);
    if (!command) throw new UsageError(`${resource.name}: unknown command "${args[commandAt]}"; expected ${resource.commands.map((c) => c.name).join(', ')} (moat ctl ${resource.name} --help)`);
    rest = commandAt + 1;
  }
  if (helpAsked(args.slice(rest)) || helpAsked(args.slice(0, rest))) throw new HelpShown(resourceHelp(resource), 0);
  const before = args.slice(0, rest).filter((_, i) => i !== resourceAt && i !== commandAt);
  let global: OptionValues;
  try {
    global = parseArgs({ args: before, options: parseConfig(GLOBAL_OPTIONS), strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const own = command.options ?? {};
  // The command's options win over moat ctl's of the same name.
  const merged = { ...GLOBAL_OPTIONS, ...own };
  let parsed;
  try {
    parsed = parseArgs({ args: args.slice(rest), options: parseConfig(merged), strict: true, allowPositionals: true, tokens: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.replace(/\. To specify a positional argument.*$/s, '')} (moat ctl ${resource.name} --help)`);
  }
  const options: OptionValues = {};
  for (const [name, value] of Object.entries(parsed.values)) {
    if (name in own) options[name] = value;
    else global[name] = value;
  }
  const order = (parsed.tokens ?? []).flatMap((t) => (t.kind === 'option' && t.name in own ? [{ name: t.name, value: t.value }] : []));
  const wanted = (command.args ?? '').split(' ').filter(Boolean);
  const required = wanted.filter((a) => !a.startsWith('[')).length;
  if (parsed.positionals.length < required || parsed.positionals.length > wanted.length) {
    const missing = parsed.positionals.length < required;
    throw new UsageError(`${missing ? `missing ${wanted[parsed.positionals.length]}` : `unexpected argument "${parsed.positionals[wanted.length]}"`}: ${usageOf(resource, command)}`);
  }
  return { resource, command, global, context: { args: parsed.positionals, options, order } };
}

function pageSizeOf(raw: unknown): number {
  if (raw === undefined) return MAX_PAGE;
  const n = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || n < 1 || n > MAX_PAGE) throw new UsageError(`--page-size: expected 1 to ${MAX_PAGE}, got "${String(raw)}"`);
  return n;
}

const warn = (message: string): void => void process.stderr.write(`moat ctl: warning: ${message}\n`);

/** What to do after a 401 or 403, in words. */
function advice(err: ApiError, credentialsFrom: string | undefined, configFile: string | undefined): string | undefined {
  if (err.status === 401) {
    if (credentialsFrom === undefined) {
      return 'give credentials: an API token with --token or MOAT_TOKEN, or an admin user with --user or MOAT_USER (password in MOAT_PASSWORD),'
        + ` or token: / user: and password: in ${configFile ?? '~/.config/moat/ctl.yaml'}`;
    }
    return `the credentials from ${credentialsFrom} were refused: check the token, or the user name and password`;
  }
  if (err.status === 403) {
    if (/scope/.test(err.message)) return `the token from ${credentialsFrom ?? '?'} lacks that scope: use a token that has it (admin.tokens[].scopes), or an admin user`;
    if (/role/.test(err.message)) return 'the user needs the admin role (admin.admin_role) through authorization: users, groups or everyone';
    if (/banned/.test(err.message)) return 'this machine\'s address is banned: lift the ban from another address (moat ctl bans remove ADDRESS)';
  }
  return undefined;
}

function print(outcome: Outcome, json: boolean): void {
  if ('raw' in outcome) {
    process.stdout.write(outcome.raw);
    return;
  }
  if (json) process.stdout.write(`${JSON.stringify(outcome.json, null, 2)}\n`);
  else {
    process.stdout.write(`${outcome.human}\n`);
    if (outcome.note) process.stderr.write(`${outcome.note}\n`);
  }
}

export async function runCtl(args: string[]): Promise<number> {
  // A reader that stops early (| head) is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
  let parsed: Parsed;
  try {
    parsed = parse(args);
  } catch (err) {
    if (err instanceof HelpShown) {
      (err.exitCode === 0 ? process.stdout : process.stderr).write(`${err.text}\n`);
      return err.exitCode;
    }
    if (err instanceof UsageError) return usageFailure(err);
    throw err;
  }
  const { global, command, context } = parsed;
  let api: ApiClient | undefined;
  let endpoint: Awaited<ReturnType<typeof resolveEndpoint>> | undefined;
  try {
    const pageSize = pageSizeOf(global['page-size']);
    const str = (name: string): string | undefined => (typeof global[name] === 'string' ? global[name] : undefined);
    endpoint = await resolveEndpoint({
      url: str('url'), token: str('token'), user: str('user'), ctlConfig: str('ctl-config'), brokerConfig: str('config'), ca: str('ca'),
      insecure: global.insecure === true,
    }, warn);
    api = new ApiClient(endpoint.connection);
    const outcome = await command.run({ ...context, api, pageSize, json: global.json === true });
    print(outcome, global.json === true);
    return outcome.exitCode ?? 0;
  } catch (err) {
    if (err instanceof UsageError) return usageFailure(err);
    if (err instanceof ApiError) {
      const hint = advice(err, endpoint?.credentialsFrom, endpoint?.configFile);
      process.stderr.write(`moat ctl: ${err.status}: ${err.message}\n${hint ? `  ${hint}\n` : ''}`);
      return 1;
    }
    if (err instanceof UnreachableError) {
      process.stderr.write(`moat ctl: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`moat ctl: ${(err as Error).message}\n`);
    return 1;
  } finally {
    api?.close();
  }
}

function usageFailure(err: UsageError): number {
  process.stderr.write(`moat ctl: ${err.message}\n`);
  return 2;
}
