import type { AclAction, AclConfig, AclRule } from './acl.js';
import { topicFilterError } from '../protocol/topic-rules.js';

/**
 * Mosquitto's `acl_file`, read as it is and turned into Moat's rules:
 *   user <name>                                   following `topic` lines are this user's
 *   topic [read|write|readwrite|deny] <topic>     before any `user` line: for anonymous clients
 *   pattern [read|write|readwrite|deny] <topic>   for every client, with %c and %u
 * As in Mosquitto 2.0, a user's own lines are tried before the patterns, and deny
 * lines before allow lines in each; `read` governs deliveries (and, in Moat,
 * which filters may be subscribed), `write` publishing.
 */

export class AclFileError extends Error {
  override readonly name = 'AclFileError';
  constructor(readonly file: string, readonly line: number, readonly problem: string) {
    super(`${file}:${line}: ${problem}`);
  }
}

const ACCESS: Record<string, { actions: AclAction[]; effect: 'allow' | 'deny' }> = {
  read: { actions: ['subscribe'], effect: 'allow' },
  write: { actions: ['publish'], effect: 'allow' },
  readwrite: { actions: ['publish', 'subscribe'], effect: 'allow' },
  deny: { actions: ['publish', 'subscribe'], effect: 'deny' },
};

interface RuleList {
  deny: AclRule[];
  allow: AclRule[];
}

const ordered = (list: RuleList): AclRule[] => [...list.deny, ...list.allow];

export function parseMosquittoAcl(text: string, file: string): AclConfig {
  const anonymous: RuleList = { deny: [], allow: [] };
  const patterns: RuleList = { deny: [], allow: [] };
  const users = new Map<string, RuleList>();
  let current: RuleList = anonymous;

  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\s+$/, '');
    if (line === '' || line.startsWith('#')) return;
    const fail = (problem: string): never => {
      throw new AclFileError(file, index + 1, problem);
    };
    const space = line.indexOf(' ');
    const keyword = space === -1 ? line : line.slice(0, space);
    const rest = space === -1 ? '' : line.slice(space + 1).trim();
    if (keyword === 'user') {
      if (rest === '') fail('"user" needs a name');
      let list = users.get(rest);
      if (!list) users.set(rest, (list = { deny: [], allow: [] }));
      current = list;
      return;
    }
    if (keyword !== 'topic' && keyword !== 'pattern') fail(`unknown keyword "${keyword}" (expected user, topic or pattern)`);
    if (rest === '') fail(`"${keyword}" needs a topic`);
    // One word: the topic, with readwrite access; otherwise the first word is the access.
    const firstSpace = rest.indexOf(' ');
    let access = 'readwrite';
    let topic = rest;
    if (firstSpace !== -1) {
      access = rest.slice(0, firstSpace);
      topic = rest.slice(firstSpace + 1).trim();
      if (!ACCESS[access]) fail(`unknown access "${access}" (expected read, write, readwrite or deny)`);
    }
    const problem = topicFilterError(topic, 4);
    if (problem) fail(`invalid topic "${topic}": ${problem}`);
    const { actions, effect } = ACCESS[access]!;
    const rule: AclRule = { filter: topic, actions, effect };
    const list = keyword === 'pattern' ? patterns : current;
    list[effect].push(rule);
  });

  const roles: Record<string, AclRule[]> = {
    'mosquitto:anonymous': ordered(anonymous),
    'mosquitto:patterns': ordered(patterns),
  };
  const userConfig: Record<string, { roles: string[] }> = {};
  for (const [name, list] of users) {
    roles[`mosquitto:user:${name}`] = ordered(list);
    userConfig[name] = { roles: [`mosquitto:user:${name}`] };
  }
  return { roles, users: userConfig, anonymous: { roles: ['mosquitto:anonymous'] }, everyone: { roles: ['mosquitto:patterns'] } };
}
