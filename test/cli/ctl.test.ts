import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';
import { formatDuration, parseDuration } from '../../src/cli/ctl/duration.js';
import { printable, table } from '../../src/cli/ctl/table.js';
import { MOAT, startAdminBroker } from '../helpers/admin.js';
import { freePort, killAll, run } from '../helpers/process.js';

/**
 * `moat ctl` (the built CLI, as a child process) against a real `moat` with an admin listener and MQTT.js clients:
 * clients listed (table, --json, every page), shown, kicked and banned; an address banned and refused, then let in;
 * a user added and logging in over MQTT; a read-only token, no credentials and an unreachable URL told in words; the
 * endpoint and credentials from flags, the environment, the ctl config file and the broker's own configuration.
 */

const WRITE_TOKEN = 'write-0123456789abcdef0123456789abcdef0123456789';
const READ_TOKEN = 'read-0123456789abcdef0123456789abcdef0123456789';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Result = Awaited<ReturnType<typeof run>>;

describe('moat ctl', () => {
  let dir: string;
  let mqttPort: number;
  let base: string;
  const clients: MqttClient[] = [];

  /** The environment without the caller's MOAT_* settings, and a home of our own (no ~/.config/moat/ctl.yaml of the machine's). */
  function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MOAT_') && k !== 'XDG_CONFIG_HOME' && k !== 'NO_COLOR') env[k] = v;
    return { ...env, HOME: path.join(dir, 'nohome'), ...extra };
  }
  /** `moat ctl ARGS` with the write token in the environment unless `env` says otherwise. */
  const ctl = (args: string[], env: Record<string, string> = { MOAT_URL: base, MOAT_TOKEN: WRITE_TOKEN }, input?: string): Promise<Result> =>
    run(process.execPath, [MOAT, 'ctl', ...args], { env: cleanEnv(env), cwd: dir, limitMs: 15_000, ...(input !== undefined && { input }) });
  const ok = (r: Result): string => {
    assert.equal(r.code, 0, `exit ${r.code}; stdout: ${r.stdout} stderr: ${r.stderr}`);
    return r.stdout;
  };

  function connect(clientId: string, protocolVersion: 4 | 5, extra: Partial<IClientOptions> = {}, user = ['bob', 'bob-password']): Promise<MqttClient> {
    const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId, username: user[0], password: user[1], protocolVersion, reconnectPeriod: 0, connectTimeout: 5000, ...extra,
    });
    clients.push(client);
    return new Promise((resolve, reject) => {
      client.once('connect', () => resolve(client));
      client.once('error', reject);
    });
  }
  /** One connection attempt: 'connected', or how it failed (an error's message, or 'closed' before any CONNACK). */
  function attempt(client: MqttClient): Promise<string> {
    clients.push(client);
    return new Promise((resolve) => {
      client.once('connect', () => resolve('connected'));
      client.once('error', (err) => resolve(err.message));
      client.once('close', () => resolve('closed'));
    }).then((outcome) => {
      client.end(true);
      return outcome as string;
    });
  }
  const login = (clientId: string, user: string, password: string): Promise<string> =>
    attempt(mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { clientId, username: user, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 }));
  /** From 127.0.0.2, another loopback address, so that banning it leaves the admin API (on 127.0.0.1) reachable. */
  const fromOtherAddress = (clientId: string): Promise<string> => attempt(new MqttClient(
    () => net.createConnection({ host: '127.0.0.1', port: mqttPort, localAddress: '127.0.0.2' }),
    { clientId, username: 'bob', password: 'bob-password', protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 },
  ));

  before(async () => {
    ({ dir, mqttPort, base } = await startAdminBroker({
      prefix: 'moat-ctl-',
      users: { root: { password: 'root-password', roles: ['admin'] }, bob: { password: 'bob-password', roles: ['device'] } },
      tokens: [{ name: 'writer', token: WRITE_TOKEN, scopes: ['read', 'write', 'metrics'] }, { name: 'reader', token: READ_TOKEN, scopes: ['read'] }],
    }));
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('clients list: the connected clients as a table and as the API\'s JSON, filtered, every page fetched, or --limit', async () => {
    const v5 = await connect('ls-v5', 5, { keepalive: 33 });
    await connect('ls-a', 4);
    await connect('ls-b', 4);
    await new Promise<void>((resolve) => v5.subscribe('ls/+/x', { qos: 1 }, () => resolve()));
    const [shown, json, paged, limited, filtered, detail] = await Promise.all([
      ctl(['clients', 'list', '--id', 'ls-*']),
      ctl(['--json', 'clients', 'list', '--id', 'ls-*', '--protocol', '5']),
      ctl(['--page-size', '2', 'clients', 'list', '--id', 'ls-*', '--json']),
      ctl(['clients', 'list', '--id', 'ls-*', '--limit', '2']),
      ctl(['clients', 'list', '--id', 'ls-*', '--username', 'nobody']),
      ctl(['clients', 'show', 'ls-v5']),
    ]);
    const lines = ok(shown).trimEnd().split('\n');
    assert.match(lines[0]!, /^ID\s+USER\s+ADDRESS\s+PORT\s+LISTENER\s+PROTOCOL\s+CONNECTED\s+KEEPALIVE$/);
    assert.deepEqual(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3)), [['ls-a', 'bob', '127.0.0.1'], ['ls-b', 'bob', '127.0.0.1'], ['ls-v5', 'bob', '127.0.0.1']]);
    // Columns line up: every row's USER starts where the header's does.
    const userColumn = lines[0]!.indexOf('USER');
    for (const line of lines.slice(1)) assert.equal(line.indexOf('bob'), userColumn);
    assert.match(lines[3]!, /\s5\s.*\s33s$/);
    assert.ok(!shown.stdout.includes('\u001b'), 'no colours when not a terminal');
    // --json: the API's answer as it is.
    const page = JSON.parse(ok(json)) as { items: Array<Record<string, unknown>>; total: number };
    assert.equal(page.total, 1);
    assert.deepEqual(Object.keys(page.items[0]!), ['id', 'user', 'address', 'port', 'listener', 'protocol', 'connected_since', 'keep_alive', 'clean_start', 'session_expiry_interval', 'messages_in', 'messages_out', 'bytes_in', 'bytes_out', 'rates']);
    assert.equal(page.items[0]!.keep_alive, 33);
    // Two requests of two: all three, no cursor left.
    const all = JSON.parse(ok(paged)) as { items: Array<{ id: string }>; total: number; next_cursor?: string };
    assert.deepEqual(all.items.map((c) => c.id), ['ls-a', 'ls-b', 'ls-v5']);
    assert.equal(all.next_cursor, undefined);
    assert.equal(ok(limited).trimEnd().split('\n').length, 3, 'a header and two clients');
    assert.match(limited.stderr, /2 of 3 clients shown/);
    assert.equal(ok(filtered).trimEnd().split('\n').length, 1, 'only the header');
    assert.match(ok(detail), /^id\s+ls-v5$/m);
    assert.match(detail.stdout, /^ls\/\+\/x\s+1\s+no\s+no/m);
    assert.match(detail.stdout, /^in flight\s+0$/m);
    assert.match(detail.stdout, /^queued\s+0$/m);
    assert.match(detail.stdout, /^messages\s+0 in, 0 out \(0\/s in, 0\/s out since connected\)$/m);
  });

  it('clients kick: the MQTT 5 client gets DISCONNECT 0x98 and its connection closes', async () => {
    const client = await connect('kick-me', 5);
    const reason = new Promise<number | undefined>((resolve) => client.once('disconnect', (packet) => resolve(packet.reasonCode)));
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    assert.match(ok(await ctl(['clients', 'kick', 'kick-me'])), /^disconnected kick-me \(reason code 0x98/);
    assert.equal(await reason, 0x98);
    await closed;
  });

  it('clients ban --by client_id --for 10m: disconnected and refused; bans remove (the kind found from the list) lets it back', async () => {
    const client = await connect('ban-me', 4);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const banned = await ctl(['--json', 'clients', 'ban', 'ban-me', '--by', 'client_id', '--for', '10m', '--reason', 'testing']);
    const ban = JSON.parse(ok(banned)) as { kind: string; value: string; since: string; until: string; reason: string };
    assert.deepEqual([ban.kind, ban.value, ban.reason], ['client_id', 'ban-me', 'testing']);
    assert.equal(Date.parse(ban.until) - Date.parse(ban.since), 600_000);
    await closed;
    assert.notEqual(await login('ban-me', 'bob', 'bob-password'), 'connected');
    assert.equal(ok(await ctl(['bans', 'remove', 'ban-me'])), 'lifted the client id ban on ban-me\n');
    assert.equal(await login('ban-me', 'bob', 'bob-password'), 'connected');
  });

  it('bans add ADDRESS --for 1h: a connection from that address is refused; bans remove lets it in again', async () => {
    assert.equal(await fromOtherAddress('far-1'), 'connected');
    assert.match(ok(await ctl(['bans', 'add', '127.0.0.2', '--for', '1h', '--reason', 'scanner'])), /^banned address 127\.0\.0\.2 until \S+ \S+Z \(scanner\)$/m);
    assert.notEqual(await fromOtherAddress('far-2'), 'connected');
    const [network, list] = await Promise.all([ctl(['bans', 'add', '10.0.0.0/8', '--for', '1h']), ctl(['--json', 'bans', 'list', '--kind', 'address'])]);
    assert.match(ok(network), /^banned network 10\.0\.0\.0\/8 until /);
    const listed = JSON.parse(ok(list)) as { items: Array<{ value: string; until: string; reason: string }> };
    const ban = listed.items.find((b) => b.value === '127.0.0.2')!;
    assert.equal(ban.reason, 'scanner');
    assert.ok(Math.abs(Date.parse(ban.until) - Date.now() - 3_600_000) < 60_000, 'an hour from now');
    assert.equal(ok(await ctl(['bans', 'remove', '127.0.0.2'])), 'lifted the address ban on 127.0.0.2\n');
    assert.equal(await fromOtherAddress('far-3'), 'connected');
    const again = await ctl(['bans', 'remove', '127.0.0.2']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^moat ctl: 404: no address ban on "127\.0\.0\.2"/);
  });

  it('users add NAME --password-stdin --role R: an MQTT login as the new user works; a role made with --allow; delete refuses it again', async () => {
    ok(await ctl(['roles', 'add', 'ctl-sensors', '--allow', 'publish,subscribe:sensors/#', '--deny', 'all:sensors/secret/#']));
    const role = JSON.parse(ok(await ctl(['--json', 'roles', 'show', 'ctl-sensors']))) as { rules: unknown };
    assert.deepEqual(role.rules, [
      { filter: 'sensors/#', actions: ['publish', 'subscribe'], effect: 'allow' },
      { filter: 'sensors/secret/#', actions: ['publish', 'subscribe', 'receive'], effect: 'deny' },
    ]);
    assert.notEqual(await login('carl-1', 'carl', 'carl-password'), 'connected');
    const added = await ctl(['users', 'add', 'carl', '--password-stdin', '--role', 'ctl-sensors'], undefined, 'carl-password\n');
    assert.equal(ok(added), 'added user carl (roles: ctl-sensors)\n');
    assert.equal(await login('carl-2', 'carl', 'carl-password'), 'connected');
    const [list, password, group] = await Promise.all([
      ctl(['users', 'list']),
      ctl(['users', 'set-password', 'carl', '--password-stdin'], undefined, 'carl-new-password\n'),
      ctl(['groups', 'add', 'ctl-field', '--role', 'ctl-sensors:5']),
    ]);
    assert.match(ok(list), /^carl\s+ctl-sensors\s+-\s+-\s+yes\s+no\s+yes$/m);
    ok(password);
    assert.match(ok(group), /^roles\s+ctl-sensors:5$/m);
    assert.notEqual(await login('carl-3', 'carl', 'carl-password'), 'connected');
    assert.equal(await login('carl-4', 'carl', 'carl-new-password'), 'connected');
    assert.equal(ok(await ctl(['users', 'delete', 'carl'])), 'deleted user carl\n');
    assert.notEqual(await login('carl-5', 'carl', 'carl-new-password'), 'connected');
  });

  it('a read-only token: reads work, a write command fails with 403 and names the scope', async () => {
    const env = { MOAT_URL: base, MOAT_TOKEN: READ_TOKEN };
    const [read, write] = await Promise.all([ctl(['clients', 'list'], env), ctl(['bans', 'add', '203.0.113.9'], env)]);
    ok(read);
    assert.equal(write.code, 1);
    assert.match(write.stderr, /^moat ctl: 403: token:reader does not have the "write" scope\n/);
    assert.match(write.stderr, /token from MOAT_TOKEN lacks that scope/);
    // The refusal is in the security feed.
    assert.match(ok(await ctl(['events', 'list'])), /^\s*\d+\s+\S+ \S+Z\s+admin\.request\s+-\s+-\s+127\.0\.0\.1\s+token:reader POST \/api\/v1\/bans 403$/m);
  });

  it('no credentials: 401, and how to give them; an admin user works with --user and MOAT_PASSWORD, not with a wrong one', async () => {
    const [none, user, wrong] = await Promise.all([
      ctl(['clients', 'list'], { MOAT_URL: base }),
      ctl(['--user', 'root', 'sessions', 'list'], { MOAT_URL: base, MOAT_PASSWORD: 'root-password' }),
      ctl(['--user', 'root', 'sessions', 'list'], { MOAT_URL: base, MOAT_PASSWORD: 'not-it' }),
    ]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^moat ctl: 401: authentication required/);
    assert.match(none.stderr, /--token or MOAT_TOKEN.*--user or MOAT_USER/);
    assert.match(ok(user), /^CLIENT\s+ONLINE/);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^moat ctl: 401: bad user name or password\n {2}the credentials from --user were refused/);
  });

  it('an unreachable URL: says which URL could not be reached, and why', async () => {
    const port = await freePort();
    const r = await ctl(['clients', 'list'], { MOAT_URL: `http://127.0.0.1:${port}`, MOAT_TOKEN: WRITE_TOKEN });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^moat ctl: cannot reach http://127\\.0\\.0\\.1:${port}: connection refused`));
    assert.equal(r.stdout, '');
  });

  it('endpoint and credentials: flags over the environment over the ctl config file; a secret file others can read is warned about', async () => {
    const unreachable = `http://127.0.0.1:${await freePort()}`;
    const file = path.join(dir, 'ctl.yaml');
    writeFileSync(file, `url: ${base}\ntoken: ${WRITE_TOKEN}\n`);
    chmodSync(file, 0o644);
    const home = path.join(dir, 'home');
    mkdirSync(path.join(home, '.config', 'moat'), { recursive: true });
    writeFileSync(path.join(home, '.config', 'moat', 'ctl.yaml'), `url: ${base}\ntoken: ${READ_TOKEN}\n`, { mode: 0o600 });
    const [fromFile, envToken, flagToken, envUrl, flagUrl, defaultFile, brokerConfig] = await Promise.all([
      ctl(['clients', 'list'], { MOAT_CTL_CONFIG: file }),
      ctl(['clients', 'list'], { MOAT_CTL_CONFIG: file, MOAT_TOKEN: 'wrong-token' }),
      ctl(['--token', WRITE_TOKEN, 'clients', 'list'], { MOAT_CTL_CONFIG: file, MOAT_TOKEN: 'wrong-token' }),
      ctl(['--ctl-config', file, 'clients', 'list'], { MOAT_URL: unreachable }),
      ctl(['--ctl-config', file, '--url', base, 'clients', 'list'], { MOAT_URL: unreachable }),
      ctl(['bans', 'add', '203.0.113.7'], { HOME: home }),
      ctl(['-c', 'moat.yaml', 'health'], {}),
    ]);
    assert.match(ok(fromFile), /^ID\s+USER/);
    assert.match(fromFile.stderr, /^moat ctl: warning: .*ctl\.yaml holds a secret and others can read it \(mode 0644\): chmod 600 /);
    assert.equal(envToken.code, 1);
    assert.match(envToken.stderr, /401: unknown API token\n {2}the credentials from MOAT_TOKEN were refused/);
    ok(flagToken);
    assert.equal(envUrl.code, 1);
    assert.match(envUrl.stderr, new RegExp(`cannot reach ${unreachable.replace(/\./g, '\\.')}`));
    ok(flagUrl);
    // ~/.config/moat/ctl.yaml (mode 0600: no warning) holds the read token: its 403 shows it was the one used.
    assert.equal(defaultFile.code, 1);
    assert.match(defaultFile.stderr, /^moat ctl: 403: token:reader/);
    assert.doesNotMatch(defaultFile.stderr, /warning/);
    // The broker's own configuration gives the URL; the probes need no credentials.
    assert.match(ok(brokerConfig), /^healthz\s+ok\nreadyz\s+ready\n$/);
  });

  it('sessions, subscriptions, the topic tree, retained messages, the broker and its metrics', async () => {
    const keeper = await connect('keep-me', 5, { clean: false, properties: { sessionExpiryInterval: 600 } });
    await new Promise<void>((resolve) => keeper.subscribe('shelf/#', { qos: 1 }, () => resolve()));
    await new Promise<void>((resolve, reject) => keeper.publish('shelf/a/b', 'hello', { qos: 1, retain: true }, (err) => (err ? reject(err) : resolve())));
    await new Promise<void>((resolve) => keeper.end(false, {}, () => resolve()));
    await sleep(100);
    const [offline, subs, tree, one, raw, info, metrics] = await Promise.all([
      ctl(['sessions', 'list', '--state', 'offline']),
      ctl(['subscriptions', 'list', '--client-id', 'keep-me']),
      ctl(['topics', 'tree', 'shelf']),
      ctl(['retained', 'get', 'shelf/a/b']),
      ctl(['retained', 'get', 'shelf/a/b', '--raw']),
      ctl(['broker', 'info']),
      ctl(['metrics', 'moat_sessions']),
    ]);
    assert.match(ok(offline), /^keep-me\s+no\s+yes\s+1\s+0\s+0\s+\d{4}-/m);
    assert.match(ok(subs), /^keep-me\s+no\s+shelf\/#\s+1/m);
    assert.match(ok(tree), /^shelf: 0 subscriptions, 0 retained here\n/);
    assert.match(tree.stdout, /^shelf\/#\s+1\s+0\s+no$/m);
    assert.match(tree.stdout, /^shelf\/a\s+0\s+1\s+yes$/m);
    assert.match(ok(one), /^payload\s+hello$/m);
    assert.equal(ok(raw), 'hello');
    assert.match(ok(info), /^version\s+\d+\.\d+\.\d+/);
    assert.match(info.stdout, new RegExp(`^mqtt\\s+127\\.0\\.0\\.1:${mqttPort}$`, 'm'));
    assert.match(ok(metrics), /^moat_sessions\{state="offline"\} [1-9]/m);
    assert.doesNotMatch(metrics.stdout, /^moat_connections/m);
    assert.match(ok(await ctl(['retained', 'delete', 'shelf/a/b'])), /^removed the retained message on shelf\/a\/b$/m);
    assert.equal(ok(await ctl(['sessions', 'delete', 'keep-me'])), 'removed the session of keep-me\n');
  });

  it('--help lists the resources and their commands; a mistake on the command line exits 2 with the usage', async () => {
    const [help, users, unknown, missing, badOption, named, short] = await Promise.all([
      ctl(['--help']), ctl(['users', '--help']), ctl(['planets', 'list']), ctl(['clients', 'kick']), ctl(['bans', 'add', '10.0.0.1', '--for', 'ever']),
      ctl(['bans', 'add', 'mallory']), ctl(['users', 'set-password', 'bob', '--password-stdin'], undefined, 'short\n'),
    ]);
    for (const resource of ['clients', 'sessions', 'subscriptions', 'topics', 'retained', 'bans', 'events', 'users', 'groups', 'roles', 'broker', 'health', 'metrics']) {
      assert.match(ok(help), new RegExp(`^ {2}${resource}\\s`, 'm'));
    }
    for (const command of ['list', 'show', 'add NAME', 'set NAME', 'set-password NAME', 'delete NAME']) assert.match(ok(users), new RegExp(`moat ctl users ${command}`));
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown resource "planets"/);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing ID: moat ctl clients kick ID/);
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /--for: "ever" is not a duration/);
    assert.equal(named.code, 2);
    assert.match(named.stderr, /"mallory" is not an address or a network: .*--kind client_id or --kind username/);
    assert.equal(short.code, 2);
    assert.match(short.stderr, /the password is too short: 5 characters, at least 8/);
  });

  it('unit: durations, ages, and tables that escape control characters', () => {
    assert.equal(parseDuration('30s'), 30);
    assert.equal(parseDuration('10m'), 600);
    assert.equal(parseDuration('1h'), 3600);
    assert.equal(parseDuration('7d'), 604_800);
    assert.equal(parseDuration('1h30m'), 5400);
    assert.equal(parseDuration('90'), 90);
    for (const bad of ['', '0s', '1y', 'h', '-5m', '1.5h']) assert.throws(() => parseDuration(bad), /duration/, bad);
    assert.equal(formatDuration(3725), '1h 2m');
    assert.equal(formatDuration(5), '5s');
    assert.equal(printable('a\u001b[31mb\n'), 'a\\x1b[31mb\\n');
    assert.equal(table([{ header: 'ID', value: (s: string) => s }, { header: 'N', value: () => 7, right: true }], ['x\u0007', 'long-name']), 'ID         N\nx\\x07      7\nlong-name  7');
  });
});
