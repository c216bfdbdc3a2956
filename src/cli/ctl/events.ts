import { flag, text, UsageError, type Command, type CommandContext, type Resource } from './command.js';
import { table, time, type Column } from './table.js';

/**
 * The security feed, /api/v1/events: refusals, bans and security changes from the audit trail, numbered. `--follow`
 * asks for what came after the last number seen, every two seconds, as `tail -f` would.
 */

interface EventJson {
  seq: number;
  time: string;
  event: string;
  clientId: string;
  username?: string;
  remoteAddress?: string;
  listener?: string;
  reason?: string;
  topic?: string;
  principal?: string;
  httpMethod?: string;
  path?: string;
  status?: number;
}

interface EventsPage {
  items: EventJson[];
  last_seq: number;
  boot_id: string;
}

const FOLLOW_INTERVAL_MS = 2000;

/** What the event is about, beyond who: a reason, a topic, or an admin request. */
function detail(e: EventJson): string | undefined {
  if (e.event === 'admin.request') return `${e.principal ?? ''} ${e.httpMethod ?? ''} ${e.path ?? ''} ${e.status ?? ''}`.trim();
  return [e.topic, e.reason].filter(Boolean).join(': ') || undefined;
}

const COLUMNS: ReadonlyArray<Column<EventJson>> = [
  { header: 'SEQ', value: (e) => e.seq, right: true },
  { header: 'TIME', value: (e) => time(e.time) },
  { header: 'EVENT', value: (e) => e.event },
  { header: 'CLIENT', value: (e) => e.clientId },
  { header: 'USER', value: (e) => e.username },
  { header: 'ADDRESS', value: (e) => e.remoteAddress },
  { header: 'DETAIL', value: detail },
];

function afterOf(context: CommandContext): string | undefined {
  const raw = text(context, 'after');
  if (raw !== undefined && !/^\d+$/.test(raw)) throw new UsageError(`--after: expected an event number, got "${raw}"`);
  return raw;
}

async function follow(context: CommandContext, first: EventsPage, json: boolean): Promise<never> {
  const show = (items: EventJson[]): void => {
    if (items.length === 0) return;
    // Without a header after the first lines: the table's widths are per batch, the columns stay in order.
    process.stdout.write(`${json ? items.map((e) => JSON.stringify(e)).join('\n') : table(COLUMNS, items).split('\n').slice(1).join('\n')}\n`);
  };
  process.stdout.write(json ? '' : `${table(COLUMNS, first.items)}\n`);
  if (json) show(first.items);
  let last = first.last_seq;
  let boot = first.boot_id;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_INTERVAL_MS));
    let page = await context.api.get<EventsPage>('/api/v1/events', { after: String(last), limit: '1000' });
    // Another start of the broker: its numbers began again from 1.
    if (page.boot_id !== boot) {
      boot = page.boot_id;
      last = 0;
      page = await context.api.get<EventsPage>('/api/v1/events', { after: '0', limit: '1000' });
    }
    show(page.items.filter((e) => e.seq > last));
    last = Math.max(last, page.last_seq);
  }
}

const commands: Command[] = [
  {
    name: 'list', summary: 'the latest refusals, bans and security changes (the broker keeps the last 1,000 since its start)',
    options: {
      after: { type: 'string', value: 'SEQ', help: 'only events numbered above SEQ' },
      limit: { type: 'string', value: 'N', help: 'at most N events (1-1000, default 100)' },
      follow: { type: 'boolean', help: 'keep printing new events as they come (--json: one JSON object a line)' },
    },
    run: async (context) => {
      const page = await context.api.get<EventsPage>('/api/v1/events', { after: afterOf(context), limit: text(context, 'limit') });
      if (flag(context, 'follow')) return follow(context, page, context.json);
      return { json: page, human: table(COLUMNS, page.items) };
    },
  },
];

export const events: Resource = { name: 'events', summary: 'the security feed: list [--follow]', commands };
