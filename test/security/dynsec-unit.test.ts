import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessControl } from '../../src/security/acl.js';
import { aclsFromRule, handleRequest, ruleFromAcl } from '../../src/security/dynsec.js';
import { RuntimeProvider } from '../../src/security/runtime-provider.js';
import { createSecurity } from '../../src/security/index.js';
import { RuntimeSecurity, byPriority, type RecordKind } from '../../src/security/runtime-store.js';
import type { AuthenticateRequest } from '../../src/broker/hooks.js';

/** The pure parts of the dynamic-security mapping and the runtime store, without a broker. */

const principal = (username: string) => ({ clientId: 'c1', username, rules: [] });

/** A RuntimeSecurity kept in a plain map, as the store's records would keep it. */
function memoryRuntime(): { runtime: RuntimeSecurity; records: Map<string, Map<string, unknown>> } {
  const records = new Map<string, Map<string, unknown>>();
  const of = (kind: RecordKind): Map<string, unknown> => records.get(kind) ?? records.set(kind, new Map()).get(kind)!;
  const runtime = new RuntimeSecurity();
  runtime.attach({ load: (kind) => of(kind), save: (kind, key, value) => of(kind).set(key, JSON.parse(JSON.stringify(value))), delete: (kind, key) => of(kind).delete(key) });
  return { runtime, records };
}

const request = (username: string, password: string, clientId = 'c1'): AuthenticateRequest => ({
  clientId, username, password: Buffer.from(password), protocolVersion: 4, remoteAddress: '127.0.0.1', listener: 'l', allowAnonymous: false, remotePort: 1,
});

describe('dynsec ACL mapping', () => {
  it('maps Mosquitto ACL types onto Moat actions', () => {
    assert.deepEqual(ruleFromAcl({ acltype: 'publishClientSend', topic: 'a/#', allow: true, priority: 3 }), { filter: 'a/#', actions: ['publish'], effect: 'allow', priority: 3 });
    assert.deepEqual(ruleFromAcl({ acltype: 'subscribePattern', topic: 'a/+', allow: false }), { filter: 'a/+', actions: ['subscribe'], effect: 'deny' });
    assert.deepEqual(ruleFromAcl({ acltype: 'publishClientReceive', topic: 'a/secret', allow: false }).actions, ['receive']);
    assert.deepEqual(ruleFromAcl({ acltype: 'subscribeLiteral', topic: 'a/b', allow: true }).actions, ['subscribe']);
  });

  it('refuses what Moat cannot express: unsubscribe ACLs, literal wildcard subscriptions, unknown types', () => {
    assert.throws(() => ruleFromAcl({ acltype: 'unsubscribePattern', topic: 'a', allow: true }), /UNSUBSCRIBE/);
    assert.throws(() => ruleFromAcl({ acltype: 'subscribeLiteral', topic: 'a/#', allow: true }), /subscribePattern/);
    assert.throws(() => ruleFromAcl({ acltype: 'publish', topic: 'a', allow: true }), /Invalid acltype/);
    assert.throws(() => ruleFromAcl({ acltype: 'publishClientSend', allow: true }), /topic/);
  });

  it('reports rules back as Mosquitto ACLs, one per action', () => {
    assert.deepEqual(aclsFromRule({ filter: 'x', actions: ['publish', 'subscribe'], effect: 'deny', priority: 2 }), [
      { acltype: 'publishClientSend', topic: 'x', priority: 2, allow: false },
      { acltype: 'subscribePattern', topic: 'x', priority: 2, allow: false },
    ]);
  });

  it('orders by priority, highest first, ties in the order added', () => {
    assert.deepEqual(byPriority([{ n: 'a' }, { n: 'b', priority: 5 }, { n: 'c', priority: -1 }, { n: 'd' }]).map((x) => x.n), ['b', 'a', 'd', 'c']);
  });
});

describe('receive rules (publishClientReceive)', () => {
  it('decide deliveries only, never a subscription', () => {
    const acl = new AccessControl({
      roles: { r: [{ filter: 'a/secret', actions: ['receive'], effect: 'deny' }, { filter: 'a/#', actions: ['subscribe'], effect: 'allow' }] },
      users: { u: { roles: ['r'] } },
    });
    assert.equal(acl.subscribe(principal('u'), 'a/#', 1).allowed, true);
    assert.equal(acl.subscribe(principal('u'), 'a/secret', 1).allowed, true, 'a receive rule does not refuse the subscription');
    assert.equal(acl.deliver(principal('u'), 'a/secret'), false);
    assert.equal(acl.deliver(principal('u'), 'a/open'), true);
  });
});

describe('runtime store and dynsec commands', () => {
  it('carries out commands in order, answers each, and keeps everything in the records', async () => {
    const { runtime, records } = memoryRuntime();
    const { responses } = await handleRequest(runtime, JSON.stringify({ commands: [
      { command: 'createRole', rolename: 'r', acls: [{ acltype: 'publishClientSend', topic: 'low/#', priority: 1, allow: true }] },
      { command: 'addRoleACL', rolename: 'r', acltype: 'subscribePattern', topic: 'high/#', priority: 9, allow: true },
      { command: 'createGroup', groupname: 'g' },
      { command: 'addGroupRole', groupname: 'g', rolename: 'r' },
      { command: 'createClient', username: 'alice', password: 'alice-secret', roles: [{ rolename: 'r' }] },
      { command: 'addGroupClient', groupname: 'g', username: 'alice' },
      { command: 'addClientRole', username: 'alice', rolename: 'missing' },
      { command: 'getRole', rolename: 'r' },
      { command: 'getGroup', groupname: 'g' },
      { command: 'listClients', correlationData: 'x1' },
      { command: 'frobnicate' },
    ] }));
    assert.deepEqual(responses.map((r) => [r.command, r.error]), [
      ['createRole', undefined], ['addRoleACL', undefined], ['createGroup', undefined], ['addGroupRole', undefined], ['createClient', undefined],
      ['addGroupClient', undefined], ['addClientRole', 'Role not found'], ['getRole', undefined], ['getGroup', undefined], ['listClients', undefined],
      ['frobnicate', 'Unknown command'],
    ]);
    assert.deepEqual((responses[7]!.data as { role: { acls: Array<{ topic: string }> } }).role.acls.map((a) => a.topic), ['high/#', 'low/#']);
    assert.deepEqual((responses[8]!.data as { group: { clients: unknown } }).group.clients, [{ username: 'alice' }]);
    assert.deepEqual(responses[9]!.data, { totalCount: 1, clients: ['alice'] });
    assert.equal(responses[9]!.correlationData, 'x1');
    const stored = records.get('user')!.get('alice') as { credential: string };
    assert.match(stored.credential, /^scrypt\$/);
    assert.ok(!JSON.stringify([...records.get('user')!]).includes('alice-secret'), 'never the password');
    // A fresh instance reading the same records has the same users, groups and roles.
    const again = new RuntimeSecurity();
    again.attach({ load: (kind) => records.get(kind) ?? [], save: () => {}, delete: () => {} });
    assert.deepEqual(again.listUsers(), ['alice']);
    assert.deepEqual(again.overlay({}).users, { alice: { roles: ['r'], groups: ['g'] } });
    assert.deepEqual(again.overlay({}).roles!.r!.map((rule) => rule.filter), ['high/#', 'low/#']);
  });

  it('answers an invalid payload as Mosquitto does', async () => {
    const { runtime } = memoryRuntime();
    assert.deepEqual(await handleRequest(runtime, 'not json'), { responses: [{ command: 'Unknown command', error: 'Payload not valid JSON' }] });
  });

  it('precedence: names the configuration defines are its own; runtime ones under such a name are shadowed, not lost', async () => {
    const { runtime } = memoryRuntime();
    runtime.setRole('shared', { rules: [{ filter: 'runtime/#', actions: ['publish'], effect: 'allow' }] });
    runtime.declare({ user: (n) => n === 'filed', group: () => false, role: (n) => n === 'shared' });
    assert.throws(() => runtime.setRole('shared', { rules: [] }), /defined by the configuration/);
    await assert.rejects(runtime.setUser('filed', { password: 'x-password' }), /defined by the configuration/);
    const config = runtime.overlay({ roles: { shared: [{ filter: 'yaml/#', actions: ['publish'], effect: 'allow' }] } });
    assert.deepEqual(config.roles!.shared!.map((r) => r.filter), ['yaml/#']);
    runtime.declare({ user: () => false, group: () => false, role: () => false });
    assert.deepEqual(runtime.overlay({}).roles!.shared!.map((r) => r.filter), ['runtime/#']);
  });

  it('the provider accepts a runtime user\'s password, binds the client id, refuses disabled users, and restricts them', async () => {
    const { runtime } = memoryRuntime();
    await runtime.setUser('dev', { password: 'dev-password', clientId: 'dev-1' });
    const provider = new RuntimeProvider(runtime, { rememberMs: 0 });
    const ok = await provider.authenticate(request('dev', 'dev-password', 'dev-1'));
    assert.equal(ok.outcome, 'accept');
    assert.deepEqual(ok.outcome === 'accept' && ok.identity.permissions, [], 'restricted by the permissions in force');
    assert.equal((await provider.authenticate(request('dev', 'wrong-password', 'dev-1'))).outcome, 'refuse');
    assert.equal((await provider.authenticate(request('dev', 'dev-password', 'other'))).outcome, 'refuse');
    assert.equal((await provider.authenticate(request('nobody', 'x', 'dev-1'))).outcome, 'pass');
    await runtime.setUser('dev', { disabled: true });
    assert.equal((await provider.authenticate(request('dev', 'dev-password', 'dev-1'))).outcome, 'pass', 'a disabled user is unknown');
  });

  it('runtime users are not offered SCRAM-SHA-256 (its exchange would skip the client-id binding and the restriction)', async () => {
    const security = createSecurity({ authentication: [], runtime: {} }, { info: () => {}, warn: () => {}, error: () => {} });
    try {
      await security.runtime!.setUser('dev', { password: 'dev-password', clientId: 'dev-1' });
      assert.equal(security.runtime!.get('dev')?.scram !== undefined, true, 'the user has SCRAM keys in its hash');
      assert.equal(security.authMethods['SCRAM-SHA-256'], undefined, 'but no SCRAM method answers for it');
    } finally {
      security.close();
    }
  });

  it('names that would collide with object machinery (__proto__, constructor) are refused, not silently ignored', async () => {
    const { runtime } = memoryRuntime();
    for (const name of ['__proto__', 'constructor', 'toString', 'prototype']) {
      assert.throws(() => runtime.setRole(name, { rules: [] }), /reserved/, `role ${name}`);
      await assert.rejects(runtime.setUser(name, { password: 'x-password' }), /reserved/, `user ${name}`);
    }
  });
});
