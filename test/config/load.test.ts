import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load.js';
import { configError } from '../helpers/config.js';

const FILE = '/etc/moat/test-config.yaml';


/** The error names file, line and key in its fields and in its message. */
function assertLocated(err: ConfigError, file: string, line: number, key: string | undefined): void {
  assert.equal(err.file, file);
  assert.equal(err.line, line, `line of ${err.message}`);
  assert.equal(err.key, key);
  assert.ok(err.message.includes(`${file}:${line}`), `message names file and line: ${err.message}`);
  if (key !== undefined) assert.ok(err.message.includes(key), `message names the key: ${err.message}`);
}

const FULL = `# a complete configuration
listeners:
  - name: local
    host: 127.0.0.1
    port: 1883
  - name: public
    host: 0.0.0.0
    port: 8883
    allow_anonymous: true
  - port: 1884
    allow_anonymous: false
limits:
  max_packet_size: 65536
  max_connections: 500
  max_topic_length: 1024
  max_topic_levels: 16
  max_inflight_messages: 10
  max_queued_messages: 200
  max_queued_bytes: 1048576
  queue_overflow: drop_oldest
  max_outbound_buffer: 262144
  connect_timeout: 2.5
  max_retained_messages: 5000
sys_interval: 30
log:
  level: debug
  format: json
`;

describe('config: parseConfig maps a valid file to broker options', () => {
  it('maps listeners (with allow_anonymous and default host), every limit, sys_interval and log', () => {
    const config = parseConfig(FULL, FILE);
    assert.deepEqual(config.broker.listeners, [
      { name: 'local', host: '127.0.0.1', port: 1883, allowAnonymous: undefined },
      { name: 'public', host: '0.0.0.0', port: 8883, allowAnonymous: true },
      { name: undefined, host: '127.0.0.1', port: 1884, allowAnonymous: false },
    ]);
    assert.deepEqual(config.broker.limits, {
      maxPacketSize: 65536,
      maxConnections: 500,
      maxTopicLength: 1024,
      maxTopicLevels: 16,
      maxInflightMessages: 10,
      maxQueuedMessages: 200,
      maxQueuedBytes: 1048576,
      queueOverflow: 'drop_oldest',
      maxOutboundBuffer: 262144,
      connectTimeout: 2.5,
      maxRetainedMessages: 5000,
    });
    assert.equal(config.broker.sysInterval, 30);
    assert.deepEqual(config.log, { level: 'debug', format: 'json' });
  });

  it('an empty or comment-only file is an error naming the file, not the defaults (test/config/errors.test.ts has the details)', () => {
    assert.equal(configError(() => parseConfig('', FILE)).message, `${FILE}: the configuration file is empty`);
    assert.equal(configError(() => parseConfig('# nothing configured\n', FILE)).message, `${FILE}: the configuration file is empty: it holds only comments, no settings`);
  });

  it('a file with one setting gives defaults for the rest: no listener override, info level, auto format', () => {
    const config = parseConfig('sys_interval: 5\n', FILE);
    assert.equal(config.broker.listeners, undefined);
    assert.deepEqual(config.broker.limits ?? {}, {});
    assert.deepEqual(config.log, { level: 'info', format: 'auto' });
  });

  it('sys_interval: 0 is kept (turns $SYS off)', () => {
    assert.equal(parseConfig('sys_interval: 0\n', FILE).broker.sysInterval, 0);
  });
});

describe('config: errors name the file, the 1-based line, the dotted key and what was expected', () => {
  it('wrong type: max_packet_size: "big"', () => {
    const text = 'limits:\n  max_connections: 10\n  max_packet_size: "big"\n';
    const err = configError(() => parseConfig(text, FILE));
    assertLocated(err, FILE, 3, 'limits.max_packet_size');
    assert.match(err.problem, /expected integer/);
  });

  it('wrong type: a string where a boolean is expected (allow_anonymous: "yes please")', () => {
    const text = 'listeners:\n  - port: 1883\n    allow_anonymous: "yes please"\n';
    const err = configError(() => parseConfig(text, FILE));
    assertLocated(err, FILE, 3, 'listeners.0.allow_anonymous');
    assert.match(err.problem, /expected boolean/);
  });

  it('wrong type: listeners is not a list', () => {
    const text = 'sys_interval: 5\nlisteners: 1883\n';
    const err = configError(() => parseConfig(text, FILE));
    assertLocated(err, FILE, 2, 'listeners');
    assert.match(err.problem, /expected array/);
  });

  it('out of range: port 70000 in the second listener', () => {
    const text = 'listeners:\n  - port: 1883\n  - host: 127.0.0.1\n    port: 70000\n';
    const err = configError(() => parseConfig(text, FILE));
    assertLocated(err, FILE, 4, 'listeners.1.port');
    assert.equal(err.problem, 'must be at most 65535, got 70000');
  });

  it('unknown top-level key is reported on its own line', () => {
    const text = 'sys_interval: 5\n\n# comment\nmax_clients: 10\nlog:\n  level: info\n';
    const err = configError(() => parseConfig(text, FILE));
    assertLocated(err, FILE, 4, 'max_clients');
    assert.match(err.problem, /unknown key/);
  });

  it('unknown nested key is reported on its own line with its dotted path', () => {
    const text = 'limits:\n  max_connections: 10\n  max_packet_sise: 100000\n  connect_timeout: 3\n';
    const err = configError(() => parseConfig(text, FILE));
    assertLocated(err, FILE, 3, 'limits.max_packet_sise');
    assert.match(err.problem, /unknown key/);
  });

  it('unknown key inside a listener', () => {
    const text = 'listeners:\n  - port: 1883\n    certfile: server.crt\n';
    const err = configError(() => parseConfig(text, FILE));
    assertLocated(err, FILE, 3, 'listeners.0.certfile');
    assert.match(err.problem, /unknown key/);
  });

  it('a listener\'s tls must be a map with cert_file and key_file', () => {
    const notMap = configError(() => parseConfig('listeners:\n  - port: 8883\n    tls: true\n', FILE));
    assertLocated(notMap, FILE, 3, 'listeners.0.tls');
    assert.match(notMap.problem, /expected object/);
    const noKey = configError(() => parseConfig('listeners:\n  - port: 8883\n    tls:\n      cert_file: a.crt\n', FILE));
    assertLocated(noKey, FILE, 3, 'listeners.0.tls.key_file');
  });

  it('a listener without a port or a path points at that listener', () => {
    const text = 'listeners:\n  - port: 1883\n  - name: second\n    host: 127.0.0.1\n';
    const err = configError(() => parseConfig(text, FILE));
    assert.equal(err.key, 'listeners.1');
    assert.equal(err.line, 3);
    assert.ok(err.message.includes(`${FILE}:3`), err.message);
    assert.match(err.problem, /needs a port \(TCP\) or a path/);
  });

  it('dynamic security in multi-core mode: the runtime store is on, with the control API', () => {
    const loaded = parseConfig('workers: 2\nauthorization:\n  dynamic_security:\n    enabled: true\n', FILE);
    assert.deepEqual(loaded.security.runtime, { controlApi: true, adminRole: 'admin' });
  });

  it('an admin token\'s expiry: a date is midnight UTC, a date and time says its zone; anything else is refused at the key', () => {
    const digest = 'a'.repeat(64);
    const loaded = parseConfig(`admin:\n  tokens:\n    - { name: a, token_sha256: ${digest}, scopes: [read], expires: "2027-01-31" }\n    - { name: b, token_sha256: ${digest.replace(/a/g, 'b')}, scopes: [read], expires: "2027-01-31T18:00:00+01:00" }\n`, FILE);
    assert.deepEqual(loaded.admin?.tokens.map((t) => t.expiresAt), [Date.UTC(2027, 0, 31), Date.UTC(2027, 0, 31, 17)]);
    const err = configError(() => parseConfig(`admin:\n  tokens:\n    - name: a\n      token_sha256: ${digest}\n      scopes: [read]\n      expires: next tuesday\n`, FILE));
    assertLocated(err, FILE, 6, 'admin.tokens.0.expires');
    assert.match(err.problem, /"next tuesday" is not a date \(2027-01-31\) or a date and time with its zone/);
  });

  it('one administrator role: given in either place it holds for both the admin API and dynamic security; two different ones are refused', () => {
    const dynsecOnly = parseConfig('admin: { port: 18083 }\nauthorization:\n  dynamic_security: { enabled: true, admin_role: ops }\n', FILE);
    assert.equal(dynsecOnly.admin?.adminRole, 'ops', 'the admin API follows dynamic_security.admin_role');
    assert.equal(dynsecOnly.security.runtime?.adminRole, 'ops');
    const apiOnly = parseConfig('admin: { port: 18083, admin_role: ops }\nauthorization:\n  dynamic_security: { enabled: true }\n', FILE);
    assert.equal(apiOnly.security.runtime?.adminRole, 'ops', 'dynamic security follows admin.admin_role');
    assert.equal(apiOnly.admin?.adminRole, 'ops');
    const neither = parseConfig('admin: { port: 18083 }\nauthorization:\n  dynamic_security: { enabled: true }\n', FILE);
    assert.deepEqual([neither.admin?.adminRole, neither.security.runtime?.adminRole], ['admin', 'admin']);
    const err = configError(() => parseConfig('admin: { port: 18083, admin_role: ops }\nauthorization:\n  dynamic_security:\n    enabled: true\n    admin_role: root\n', FILE));
    assertLocated(err, FILE, 5, 'authorization.dynamic_security.admin_role');
    assert.match(err.problem, /"root" is not admin\.admin_role \("ops"\): one role makes a broker administrator/);
  });

  it('a Unix domain socket listener: path relative to the file, and neither a port nor a host with it', () => {
    const loaded = parseConfig('listeners:\n  - path: run/moat.sock\n', '/etc/moat/moat.yaml');
    assert.equal(loaded.broker.listeners?.[0]?.path, '/etc/moat/run/moat.sock');
    assert.equal(loaded.broker.listeners?.[0]?.port, undefined);
    const both = configError(() => parseConfig('listeners:\n  - port: 1883\n    path: /run/m.sock\n', FILE));
    assert.equal(both.key, 'listeners.0.path');
    assert.match(both.problem, /either a port \(TCP\) or a path/);
    const host = configError(() => parseConfig('listeners:\n  - host: 0.0.0.0\n    path: /run/m.sock\n', FILE));
    assert.equal(host.key, 'listeners.0.host');
    const trusted = configError(() => parseConfig('listeners:\n  - path: /run/m.sock\n    proxy_protocol: true\n    trusted_proxies: [10.0.0.1]\n', FILE));
    assert.equal(trusted.key, 'listeners.0.trusted_proxies');
    assert.match(trusted.problem, /no client addresses to check/);
  });

  it('invalid enum for log.level lists the allowed values', () => {
    const text = 'log:\n  format: json\n  level: verbose\n';
    const err = configError(() => parseConfig(text, FILE));
    assertLocated(err, FILE, 3, 'log.level');
    assert.match(err.problem, /expected one of/);
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) {
      assert.ok(err.problem.includes(level), `allowed value ${level} listed in: ${err.problem}`);
    }
  });

  it('invalid enum for limits.queue_overflow names both policies', () => {
    const text = 'limits:\n  queue_overflow: drop_random\n';
    const err = configError(() => parseConfig(text, FILE));
    assertLocated(err, FILE, 2, 'limits.queue_overflow');
    assert.ok(err.problem.includes('drop_new') && err.problem.includes('drop_oldest'), err.problem);
  });

  it('maps authentication, authorization (rules with defaults, bindings, acl_file) and audit, with paths relative to the file', () => {
    const text = [
      'authentication:', '  - type: password_file', '    path: secrets/pw',
      'authorization:', '  acl_file: acl', '  unauthorized_publish: disconnect',
      '  roles:', '    reader:', '      - topic: public/#', '        actions: [subscribe]', '        max_qos: 1',
      '      - topic: secret/#', '        effect: deny',
      '  users:', '    bob: { roles: [reader], groups: [team] }',
      '  groups:', '    team: { roles: [reader] }',
      '  anonymous: { roles: [reader] }',
      'audit:', '  file: audit.log', '',
    ].join('\n');
    // The files named are read when the configuration is loaded, so they exist here.
    const dir = mkdtempSync(path.join(tmpdir(), 'moat-config-paths-'));
    mkdirSync(path.join(dir, 'secrets'));
    writeFileSync(path.join(dir, 'secrets', 'pw'), '');
    writeFileSync(path.join(dir, 'acl'), 'user bob\ntopic read public/#\n');
    const config = parseConfig(text, path.join(dir, 'moat.yaml'));
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(config.security.authentication, [{ type: 'passwordFile', path: path.join(dir, 'secrets', 'pw'), watch: true }]);
    assert.equal(config.security.authorization?.aclFile, path.join(dir, 'acl'));
    assert.deepEqual(config.security.authorization?.rules?.roles?.reader, [
      { filter: 'public/#', actions: ['subscribe'], effect: 'allow', maxQos: 1 },
      { filter: 'secret/#', actions: ['publish', 'subscribe'], effect: 'deny' },
    ]);
    assert.deepEqual(config.security.authorization?.rules?.users, { bob: { roles: ['reader'], groups: ['team'] } });
    assert.deepEqual(config.security.authorization?.rules?.anonymous, { roles: ['reader'] });
    assert.equal(config.broker.unauthorizedPublish, 'disconnect');
    assert.equal(config.auditFile, path.join(dir, 'audit.log'));
  });

  it('payload_encryption: the key file read at load; a bad filter, a missing file or a bad key line located', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moat-config-payload-'));
    try {
      const file = path.join(dir, 'moat.yaml');
      writeFileSync(path.join(dir, 'payload.keys'), `dev:3:${'ab'.repeat(32)}\n`);
      const loaded = parseConfig('payload_encryption:\n  key_file: payload.keys\n  topics: ["secure/#"]\n', file);
      assert.deepEqual(loaded.payload, { keyFile: path.join(dir, 'payload.keys'), identity: 'username', topics: ['secure/#'], replayWindow: undefined, reencrypt: false });
      const badFilter = configError(() => parseConfig('payload_encryption:\n  key_file: payload.keys\n  topics:\n    - "a/#/b"\n', file));
      assertLocated(badFilter, file, 4, 'payload_encryption.topics.0');
      const missing = configError(() => parseConfig('payload_encryption:\n  key_file: nowhere.keys\n  topics: ["s/#"]\n', file));
      assertLocated(missing, file, 2, 'payload_encryption.key_file');
      writeFileSync(path.join(dir, 'bad.keys'), `# devices\ndev:${'zz'.repeat(32)}\n`);
      const bad = configError(() => parseConfig('payload_encryption:\n  key_file: bad.keys\n  topics: ["s/#"]\n', file));
      assertLocated(bad, file, 2, 'payload_encryption.key_file');
      assert.match(bad.problem, /bad\.keys:2: /, 'the key file and its line');
      assert.ok(!bad.message.includes('zz'.repeat(32)), 'never the key');
      // Replay state must outlive the process and live in one place.
      const memory = configError(() => parseConfig('store: { type: memory }\npayload_encryption:\n  key_file: payload.keys\n  topics: ["s/#"]\n', file));
      assertLocated(memory, file, 2, 'payload_encryption');
      assert.match(memory.problem, /replayed envelopes would be accepted again after every restart/);
      const workers = configError(() => parseConfig('workers: 2\npayload_encryption:\n  key_file: payload.keys\n  topics: ["s/#"]\n', file));
      assert.match(workers.problem, /not yet in multi-core mode/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('cluster: mapped with the store\'s Redis, with workers too; refused without the Redis store or with too short a dead time; a bad node id located', () => {
    const file = '/etc/moat/moat.yaml';
    const redis = 'store: { type: redis, url: "redis://10.0.0.5:6379", key_prefix: "prod:" }\n';
    const loaded = parseConfig(`${redis}cluster:\n  node_id: node-1\n`, file);
    assert.deepEqual(loaded.cluster, { redis: { url: 'redis://10.0.0.5:6379' }, nodeId: 'node-1', keyPrefix: 'prod:cluster:', heartbeatMs: 1000, deadAfterMs: 10_000 });
    const sqlite = configError(() => parseConfig('cluster:\n  node_id: n1\n', file));
    assertLocated(sqlite, file, 1, 'cluster');
    assert.match(sqlite.problem, /needs the Redis store .* the store here is sqlite/);
    assert.equal(parseConfig(`${redis}workers: 2\ncluster:\n  node_id: n1\n`, file).cluster?.nodeId, 'n1', 'each worker is a node of its own at run time (n1.0, n1.1)');
    const short = configError(() => parseConfig(`${redis}cluster:\n  node_id: n1\n  heartbeat_ms: 1000\n  dead_after_ms: 2000\n`, file));
    assertLocated(short, file, 5, 'cluster.dead_after_ms');
    assert.match(short.problem, /less than three heartbeats/);
    const badId = configError(() => parseConfig(`${redis}cluster:\n  node_id: "node 1/x"\n`, file));
    assertLocated(badId, file, 3, 'cluster.node_id');
  });

  it('store: Redis through Sentinel, with replicas to wait for; a Sentinel without a port located', () => {
    const file = '/etc/moat/moat.yaml';
    const loaded = parseConfig([
      'store:', '  type: redis', '  url: "redis://:secret@ignored:6379/2"',
      '  sentinel: { name: mymaster, nodes: ["10.0.0.1:26379", "[::1]:26380", "sentinel-3.local:26379"] }',
      '  wait_replicas: 1', '  wait_timeout_ms: 500', 'cluster: { node_id: n1 }', '',
    ].join('\n'), file);
    const sentinel = { name: 'mymaster', nodes: [{ host: '10.0.0.1', port: 26379 }, { host: '::1', port: 26380 }, { host: 'sentinel-3.local', port: 26379 }] };
    assert.deepEqual(loaded.store, { type: 'redis', url: 'redis://:secret@ignored:6379/2', keyPrefix: undefined, sentinel, waitReplicas: 1, waitTimeoutMs: 500 });
    assert.deepEqual(loaded.cluster?.redis, { url: 'redis://:secret@ignored:6379/2', sentinel }, 'the cluster follows the store\'s Sentinel');
    const noPort = configError(() => parseConfig('store:\n  type: redis\n  sentinel: { name: m, nodes: ["10.0.0.1"] }\n', file));
    assertLocated(noPort, file, 3, 'store.sentinel.nodes.0');
  });

  it('store: a Redis Cluster gets a hash-tagged key prefix (one slot for every key), the cluster\'s keys too; not with Sentinel too', () => {
    const file = '/etc/moat/moat.yaml';
    const nodes = 'cluster_nodes: ["10.0.0.1:7000", "10.0.0.2:7000"]';
    const loaded = parseConfig(`store: { type: redis, ${nodes} }\ncluster: { node_id: n1 }\n`, file);
    assert.deepEqual(loaded.store, {
      type: 'redis', url: 'redis://127.0.0.1:6379', keyPrefix: '{moat:}', clusterNodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7000 }],
    });
    assert.equal(loaded.cluster?.keyPrefix, '{moat:}cluster:');
    assert.deepEqual(loaded.cluster?.redis.clusterNodes, [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7000 }]);
    assert.equal((parseConfig(`store: { type: redis, key_prefix: "prod:", ${nodes} }\n`, file).store as { keyPrefix: string }).keyPrefix, '{prod:}');
    assert.equal((parseConfig(`store: { type: redis, key_prefix: "{p}:", ${nodes} }\n`, file).store as { keyPrefix: string }).keyPrefix, '{p}:', 'a tag of its own is kept');
    const both = configError(() => parseConfig(`store:\n  type: redis\n  sentinel: { name: m, nodes: ["10.0.0.1:26379"] }\n  ${nodes}\n`, file));
    assertLocated(both, file, 4, 'store.cluster_nodes');
  });

  it('maps a jwt provider; a jwt without algorithms or with two key sources is an error on its line', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moat-config-jwt-'));
    mkdirSync(path.join(dir, 'keys'));
    writeFileSync(path.join(dir, 'keys', 'pub.pem'), generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }));
    const ok = parseConfig('authentication:\n  - type: jwt\n    algorithms: [RS256]\n    public_key_file: keys/pub.pem\n    audience: moat\n    permissions_claim: mqtt\n    clock_tolerance: 5\n', path.join(dir, 'moat.yaml'));
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(ok.security.authentication, [{
      type: 'jwt', algorithms: ['RS256'], publicKeyFile: path.join(dir, 'keys', 'pub.pem'), audience: 'moat', permissionsClaim: 'mqtt', clockToleranceSeconds: 5,
    }]);
    const noAlg = configError(() => parseConfig('authentication:\n  - type: jwt\n    secret_file: s\n', FILE));
    assertLocated(noAlg, FILE, 2, 'authentication.0.type');
    assert.match(noAlg.problem, /algorithms/);
    const two = configError(() => parseConfig('authentication:\n  - type: jwt\n    algorithms: [HS256]\n    secret_file: s\n    jwks_url: https://x/jwks\n', FILE));
    assertLocated(two, FILE, 5, 'authentication.0.jwks_url');
    const mixed = configError(() => parseConfig('authentication:\n  - type: password_file\n    path: p\n    audience: x\n', FILE));
    assertLocated(mixed, FILE, 4, 'authentication.0.audience');
  });

  it('a user bound to an undefined role is an error on that line', () => {
    const text = 'authorization:\n  roles:\n    reader: []\n  users:\n    bob:\n      roles: [reader, writer]\n';
    const err = configError(() => parseConfig(text, FILE));
    assertLocated(err, FILE, 6, 'authorization.users.bob.roles.1');
    assert.match(err.problem, /unknown role "writer"/);
  });

  it('invalid enum for log.format', () => {
    const text = 'log:\n  format: xml\n';
    const err = configError(() => parseConfig(text, FILE));
    assertLocated(err, FILE, 2, 'log.format');
    assert.match(err.problem, /expected one of/);
  });

  it('bad YAML syntax reports the line', () => {
    const text = 'sys_interval: 5\nlimits:\n  max_connections: [1, 2\nlog:\n  level: info\n';
    const err = configError(() => parseConfig(text, FILE));
    assert.equal(err.file, FILE);
    assert.equal(typeof err.line, 'number');
    assert.ok(err.line! >= 3 && err.line! <= 5, `line ${err.line} near the unclosed bracket`);
    assert.match(err.problem, /YAML/i);
    assert.ok(err.message.includes(`${FILE}:${err.line}`), err.message);
  });

  it('bad YAML syntax: bad indentation on line 3', () => {
    const text = 'limits:\n  max_connections: 10\n max_packet_size: 100\n';
    const err = configError(() => parseConfig(text, FILE));
    assert.equal(err.file, FILE);
    assert.equal(err.line, 3);
    assert.match(err.problem, /YAML/i);
  });

  it('a duplicated key is an error located at the duplicate', () => {
    const text = 'sys_interval: 5\nlog:\n  level: info\nsys_interval: 6\n';
    const err = configError(() => parseConfig(text, FILE));
    assert.equal(err.file, FILE);
    assert.equal(err.line, 4);
  });

  it('a top-level scalar instead of a mapping is rejected', () => {
    const err = configError(() => parseConfig('just a string\n', FILE));
    assert.equal(err.file, FILE);
    assert.equal(err.line, 1);
    assert.match(err.problem, /expected object/);
  });
});

describe('config: loadConfigFile', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads and maps a file from disk', () => {
    const file = path.join(dir, 'ok.yaml');
    writeFileSync(file, FULL);
    const config = loadConfigFile(file);
    assert.equal(config.broker.listeners?.length, 3);
    assert.equal(config.broker.limits?.maxPacketSize, 65536);
    assert.equal(config.log.level, 'debug');
  });

  it('errors in a file name that file', () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'limits:\n  max_packet_size: "big"\n');
    const err = configError(() => loadConfigFile(file));
    assertLocated(err, file, 2, 'limits.max_packet_size');
  });

  it('an unreadable (missing) file is a ConfigError naming the file', () => {
    const file = path.join(dir, 'does-not-exist.yaml');
    const err = configError(() => loadConfigFile(file));
    assert.equal(err.file, file);
    assert.ok(err.message.includes(file), err.message);
    assert.match(err.message, /ENOENT|no such file/i);
  });

  it('a directory instead of a file is a ConfigError naming it', () => {
    const err = configError(() => loadConfigFile(dir));
    assert.equal(err.file, dir);
    assert.ok(err.message.includes(dir), err.message);
  });
});
