import { isIP } from 'node:net';
import { durationField, LIMIT_OPTION, listAll, segment, shownOf, text, UsageError, type Command, type CommandContext, type Resource } from './command.js';
import { cell, table, time, type Column } from './table.js';

/** Bans through the guard: /api/v1/bans. A target that reads as an address or a network is one; a name needs --kind. */

export interface BanJson {
  kind: 'address' | 'network' | 'client_id' | 'username';
  value: string;
  reason: string;
  since: string;
  until: string | null;
  source: 'config' | 'guard' | 'api';
}

const KINDS = ['address', 'network', 'client_id', 'username'] as const;
/** What people also call them (`clients ban --by user`). */
const ALIASES: Readonly<Record<string, BanJson['kind']>> = { user: 'username', client: 'client_id', 'client-id': 'client_id', clientid: 'client_id' };

export function banLine(ban: BanJson): string {
  const until = ban.until === null ? 'until removed' : `until ${time(ban.until)}`;
  return `banned ${ban.kind.replace('_', ' ')} ${cell(ban.value)} ${until} (${cell(ban.reason)})`;
}

function kindOption(raw: string | undefined): BanJson['kind'] | undefined {
  if (raw === undefined) return undefined;
  const kind = (KINDS as readonly string[]).includes(raw) ? raw as BanJson['kind'] : ALIASES[raw];
  if (!kind) throw new UsageError(`--kind: expected ${KINDS.join(', ')}, got "${raw}"`);
  return kind;
}

/** address or network when the target reads as one, else undefined. */
function kindOfTarget(target: string): 'address' | 'network' | undefined {
  if (isIP(target) !== 0) return 'address';
  const slash = target.lastIndexOf('/');
  if (slash > 0 && isIP(target.slice(0, slash)) !== 0 && /^\d+$/.test(target.slice(slash + 1))) return 'network';
  return undefined;
}

const COLUMNS: ReadonlyArray<Column<BanJson>> = [
  { header: 'KIND', value: (b) => b.kind },
  { header: 'VALUE', value: (b) => b.value },
  { header: 'SINCE', value: (b) => time(b.since) },
  { header: 'UNTIL', value: (b) => time(b.until) ?? 'removed' },
  { header: 'SOURCE', value: (b) => b.source },
  { header: 'REASON', value: (b) => b.reason },
];

const KIND_HELP = { type: 'string', value: 'KIND', help: 'address, network, client_id or username (an address or a network is recognised)' } as const;

/** The kind of ban to remove: given, read from the target, or the one ban on that value. */
async function kindToRemove(context: CommandContext, target: string): Promise<BanJson['kind']> {
  const kind = kindOption(text(context, 'kind')) ?? kindOfTarget(target);
  if (kind) return kind;
  const bans = (await listAll<BanJson>({ ...context, options: {} }, '/api/v1/bans')).items.filter((b) => b.value === target);
  if (bans.length === 1) return bans[0]!.kind;
  if (bans.length === 0) throw new UsageError(`no ban on "${target}" (moat ctl bans list shows them)`);
  throw new UsageError(`"${target}" is banned as ${bans.map((b) => b.kind).join(' and as ')}: say which with --kind`);
}

const commands: Command[] = [
  {
    name: 'list', summary: 'bans in force (configured, detected, and added here)',
    options: { kind: { type: 'string', value: 'KIND', help: 'only address, network, client_id or username bans' }, ...LIMIT_OPTION },
    run: async (context) => {
      const listing = await listAll<BanJson>(context, '/api/v1/bans', { kind: kindOption(text(context, 'kind')) });
      return { json: listing.json, human: table(COLUMNS, listing.items), note: shownOf(listing, 'bans') };
    },
  },
  {
    name: 'add', args: 'TARGET', summary: 'ban an address, a network (10.0.0.0/8), a client identifier or a user name',
    options: {
      kind: KIND_HELP,
      for: { type: 'string', value: 'DURATION', help: 'how long: 30s, 10m, 1h, 7d (default: until removed)' },
      reason: { type: 'string', value: 'TEXT', help: 'why, kept with the ban' },
    },
    run: async (context) => {
      const target = context.args[0]!;
      const kind = kindOption(text(context, 'kind')) ?? kindOfTarget(target);
      if (!kind) throw new UsageError(`"${target}" is not an address or a network: for a client identifier or a user name add --kind client_id or --kind username`);
      const reason = text(context, 'reason');
      const ban = await context.api.call<BanJson>('POST', '/api/v1/bans', { body: { kind, value: target, ...durationField(text(context, 'for')), ...(reason !== undefined && { reason }) } });
      return { json: ban, human: banLine(ban) };
    },
  },
  {
    name: 'remove', args: 'TARGET', summary: 'lift a ban (not one from the configuration file)', options: { kind: KIND_HELP },
    run: async (context) => {
      const target = context.args[0]!;
      const kind = await kindToRemove(context, target);
      const answer = await context.api.call<{ removed: { kind: string; value: string } }>('DELETE', `/api/v1/bans/${kind}/${segment(target)}`);
      return { json: answer, human: `lifted the ${kind.replace('_', ' ')} ban on ${cell(target)}` };
    },
  },
];

export const bans: Resource = { name: 'bans', summary: 'bans: list, add, remove', commands };
