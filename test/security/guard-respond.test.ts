import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import type { ConnackPacket } from '../../src/protocol/index.js';
import { createEntry, formatEntry, type GuardEvent } from '../../src/security/index.js';
import { createServer } from '../../src/server/index.js';
import { connectClient, RawClient, waitFor } from '../helpers/broker.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';
import { T } from '../helpers/v5.js';

/** How the guard responds beyond one process's memory: offence counts across a restart, and its events as a library API. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

/** A CONNECT from `from` (a loopback address): its CONNACK code, or 'closed' when closed unanswered. */
async function connectFrom(port: number, from: string, clientId: string, username: string, password: string): Promise<number | 'closed'> {
  let raw: RawClient | undefined;
  try {
    raw = await RawClient.connect(port, 4, from);
    raw.send({ type: T.CONNECT, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId, username, password: Buffer.from(password) });
    return ((await raw.nextPacket(5000)) as ConnackPacket).returnCode;
  } catch {
    return 'closed';
  } finally {
    raw?.destroy();
  }
}

describe('guard responses', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-guard-respond-'));
    const entries = await Promise.all(['alice', 'root'].map((u) => createEntry(u, Buffer.from(`${u}-password`), { logN: 10, r: 8, p: 1 })));
    writeFileSync(path.join(dir, 'users.pw'), `${entries.map(formatEntry).join('\n')}\n`);
  });
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('offence counts survive a restart (SQLite store): the ban after the restart lasts twice as long as the first', async () => {
    const port = await freePort();
    const file = path.join(dir, 'offences.yaml');
    writeFileSync(file, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\nlog:\n  format: json\nstore:\n  directory: ${path.join(dir, 'offences-data')}\n`
      + 'authentication:\n  - type: password_file\n    path: users.pw\nguard:\n  allow: []\n  failures: { max_per_address: 3 }\n  ban: { first: 2 }\n');
    const start = async (): Promise<Proc> => {
      const proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 60_000 });
      await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
      return proc;
    };
    /** Three wrong passwords from one address; returns how long the ban they earn lasts (ms), from its audit line. */
    const offend = async (proc: Proc): Promise<{ ms: number; until: number }> => {
      for (let n = 0; n < 3; n++) assert.equal(await connectFrom(port, '127.0.12.1', `x${n}`, 'alice', 'wrong'), 4);
      assert.equal(await connectFrom(port, '127.0.12.1', 'x3', 'alice', 'alice-password'), 'closed', 'banned');
      const line = proc.stdout.split('\n').find((l) => l.includes('"guard.banned"'));
      assert.ok(line, 'the ban is audited');
      const audit = JSON.parse(line) as { time: number; until: string };
      return { ms: Date.parse(audit.until) - audit.time, until: Date.parse(audit.until) };
    };

    let proc = await start();
    const first = await offend(proc);
    assert.ok(Math.abs(first.ms - 2000) < 100, `the first ban: 2 s (${first.ms} ms)`);
    proc.kill('SIGTERM');
    assert.equal((await proc.waitExit(10_000)).code, 0);

    proc = await start();
    // The ban itself is stored too: wait for it to run out.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, first.until - Date.now() + 100)));
    const second = await offend(proc);
    assert.ok(Math.abs(second.ms - 4000) < 100, `the second offence, after the restart: 4 s (${second.ms} ms)`);
  });

  it('events are typed library events (one type, or all as "event") and reach the onGuardEvent hook; report() audits, emits and counts a rate limit', async () => {
    const port = await freePort();
    const file = path.join(dir, 'events.yaml');
    writeFileSync(file, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\nsys_interval: 1\nstore:\n  type: memory\naudit:\n  file: audit.log\n`
      + 'authentication:\n  - type: password_file\n    path: users.pw\nguard:\n  allow: []\n  failures: { max_per_address: 3 }\n');
    const hooked: GuardEvent[] = [];
    const server = createServer({
      configFile: file,
      adjust: (c) => {
        c.security.onGuardEvent = (e) => hooked.push(e);
      },
    });
    server.logger.level = 'silent';
    await server.listen();
    try {
      const guard = server.security.guard!;
      const bans: Array<{ rule: string; kind: string; address: string; offences: number | undefined }> = [];
      // Typed by the event's name: `rule` and `ban` exist on a "banned" event only.
      guard.on('banned', (e) => bans.push({ rule: e.rule, kind: e.ban.kind, address: e.ban.value, offences: e.offences }));
      const limited: string[] = [];
      guard.on('rate-limited', (e) => limited.push(`${e.clientId} ${e.limit} ${e.action}`));

      for (let n = 0; n < 3; n++) assert.equal(await connectFrom(port, '127.0.13.1', `e${n}`, 'alice', 'wrong'), 4);
      assert.deepEqual(bans, [{ rule: 'failed-authentication', kind: 'address', address: '127.0.13.1', offences: 1 }]);
      const bannedHook = hooked.filter((e) => e.type === 'banned');
      assert.equal(bannedHook.length, 1, 'the hook is told too');
      assert.deepEqual(bannedHook[0], { type: 'banned', ban: guard.bans.list()[0], rule: 'failed-authentication', offences: 1 });

      guard.report({ type: 'rate-limited', clientId: 'chatty', username: 'alice', remoteAddress: '127.0.13.2', limit: 'messages', action: 'paused' });
      assert.deepEqual(limited, ['chatty messages paused']);
      assert.deepEqual(hooked.at(-1), { type: 'rate-limited', clientId: 'chatty', username: 'alice', remoteAddress: '127.0.13.2', limit: 'messages', action: 'paused' });
      assert.equal(guard.counters.rateLimited, 1);
      const auditLines = (): Array<Record<string, unknown>> =>
        readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
      await waitFor(() => auditLines().some((l) => l.event === 'guard.rate-limited'), 5000, 'the rate-limited audit line');
      const line = auditLines().find((l) => l.event === 'guard.rate-limited')!;
      assert.deepEqual([line.clientId, line.username, line.remoteAddress, line.action], ['chatty', 'alice', '127.0.13.2', 'paused']);

      const reader = await connectClient(`mqtt://127.0.0.1:${port}`, { clientId: 'sys-reader', username: 'root', password: 'root-password' });
      try {
        const sys = new Map<string, string>();
        reader.on('message', (topic, payload) => sys.set(topic, payload.toString()));
        await reader.subscribeAsync('$SYS/broker/security/#');
        await waitFor(() => sys.get('$SYS/broker/security/rate-limited') === '1', 4000, '$SYS/broker/security/rate-limited = 1');
      } finally {
        await reader.endAsync();
      }
    } finally {
      await server.close();
    }
  });
});
