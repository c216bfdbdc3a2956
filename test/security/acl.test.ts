import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessControl, type AclRule, type Principal } from '../../src/security/acl.js';

const rw = (filter: string, extra: Partial<AclRule> = {}): AclRule => ({ filter, actions: ['publish', 'subscribe'], effect: 'allow', ...extra });
const deny = (filter: string): AclRule => ({ filter, actions: ['publish', 'subscribe'], effect: 'deny' });
const who = (clientId: string, username?: string, extra: Partial<Principal> = {}): Principal => ({ clientId, username, ...extra });

describe('AccessControl: publish', () => {
  const acl = new AccessControl({
    roles: {
      sensors: [rw('sensors/%c/#', { maxQos: 1, retain: false })],
      reader: [{ filter: 'sensors/#', actions: ['subscribe'], effect: 'allow' }],
      admin: [deny('admin/locked'), rw('#')],
    },
    users: { dev: { roles: ['sensors'] }, ops: { roles: ['admin'] }, viewer: { groups: ['readers'] } },
    groups: { readers: { roles: ['reader'] } },
  });

  it('allows what a rule allows, within its max QoS and retain setting', () => {
    assert.deepEqual(acl.publish(who('d1', 'dev'), 'sensors/d1/temp', 1, false), { allowed: true, qos: 1 });
    assert.equal(acl.publish(who('d1', 'dev'), 'sensors/d1/temp', 2, false).allowed, false, 'QoS above the rule');
    assert.equal(acl.publish(who('d1', 'dev'), 'sensors/d1/temp', 0, true).allowed, false, 'retain not allowed');
  });

  it('denies what no rule allows, and a subscribe-only rule does not allow publishing', () => {
    assert.equal(acl.publish(who('d1', 'dev'), 'sensors/d2/temp', 0, false).allowed, false, "another client's topic");
    assert.equal(acl.publish(who('v', 'viewer'), 'sensors/x', 0, false).allowed, false);
    assert.equal(acl.publish(who('anon', undefined), 'sensors/x', 0, false).allowed, false, 'anonymous has no roles');
  });

  it('the first rule that applies decides (deny before allow)', () => {
    assert.equal(acl.publish(who('o', 'ops'), 'admin/locked', 0, false).allowed, false);
    assert.equal(acl.publish(who('o', 'ops'), 'admin/other', 0, false).allowed, true);
  });

  it('%c and %u never widen a rule: ids with +, #, / or a leading $ make it not apply', () => {
    for (const id of ['+', '#', 'a/#', 'd1/../d2', '$SYS', 'x+y']) {
      assert.equal(acl.publish(who(id, 'dev'), `sensors/${id}/t`, 0, false).allowed, false, `client id ${id}`);
      assert.equal(acl.publish(who(id, 'dev'), 'sensors/d2/t', 0, false).allowed, false, `client id ${id} reaching another topic`);
    }
  });

  it('$SYS is not reached by # (MQTT-4.7.2-1)', () => {
    assert.equal(acl.publish(who('o', 'ops'), '$SYS/broker/x', 0, false).allowed, false);
  });
});

describe('AccessControl: subscribe and delivery', () => {
  const acl = new AccessControl({
    roles: {
      ab: [{ filter: 'a/b', actions: ['subscribe'], effect: 'allow' }],
      tree: [deny('a/secret'), { filter: 'a/#', actions: ['subscribe'], effect: 'allow', maxQos: 1 }],
    },
    users: { narrow: { roles: ['ab'] }, wide: { roles: ['tree'] } },
  });

  it('judges the filter itself: allowed a/b only is refused #, a/+ and +/b', () => {
    const p = who('n', 'narrow');
    for (const filter of ['#', 'a/+', '+/b', 'a/#', '+/+']) assert.equal(acl.subscribe(p, filter, 0).allowed, false, filter);
    assert.deepEqual(acl.subscribe(p, 'a/b', 2), { allowed: true, qos: 2 });
  });

  it('grants at most the rule\'s max QoS; a deny rule covering the filter refuses it', () => {
    const p = who('w', 'wide');
    assert.deepEqual(acl.subscribe(p, 'a/#', 2), { allowed: true, qos: 1 });
    assert.equal(acl.subscribe(p, 'a/secret', 0).allowed, false);
  });

  it('a deny rule covering part of a granted filter stops those deliveries', () => {
    const p = who('w', 'wide');
    assert.equal(acl.deliver(p, 'a/open'), true);
    assert.equal(acl.deliver(p, 'a/secret'), false);
    assert.equal(acl.deliver(who('n', 'narrow'), 'a/open'), false);
  });

  it('changes apply at once: a role changed at runtime changes the answers, and the generation moves', () => {
    const p = who('n', 'narrow');
    const before = acl.generation;
    acl.setRole('ab', []);
    assert.equal(acl.deliver(p, 'a/b'), false);
    assert.equal(acl.subscribe(p, 'a/b', 0).allowed, false);
    assert.ok(acl.generation > before);
    acl.setRole('ab', [{ filter: 'a/b', actions: ['subscribe'], effect: 'allow' }]);
    assert.equal(acl.deliver(p, 'a/b'), true);
  });

  it('rules carried by the credentials (e.g. a token) come first; groups from the credentials count', () => {
    const tokenRules: AclRule[] = [{ filter: 'tok/#', actions: ['subscribe'], effect: 'allow' }];
    assert.equal(acl.subscribe(who('t', undefined, { rules: tokenRules }), 'tok/x', 0).allowed, true);
    const withGroup = new AccessControl({ roles: { r: [rw('g/#')] }, groups: { team: { roles: ['r'] } } });
    assert.equal(withGroup.publish(who('x', 'someone', { groups: ['team'] }), 'g/1', 0, false).allowed, true);
  });
});
