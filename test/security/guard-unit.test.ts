import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuthenticateRequest, AuthenticateResult } from '../../src/broker/hooks.js';
import { addressKey, Guard } from '../../src/security/guard/index.js';

/** The guard's decisions as pure code (a clock of its own, no sockets): the edge cases the socket tests cannot reach. */

const stream = { once: (): void => {} };
const request = (remoteAddress: string, extra: Partial<AuthenticateRequest> = {}): AuthenticateRequest => ({
  clientId: 'c', username: 'alice', password: Buffer.from('x'), protocolVersion: 4, remoteAddress, remotePort: 1, listener: 'l', allowAnonymous: false, ...extra,
});
const refuse = (): AuthenticateResult => false;

describe('guard decisions', () => {
  it('IPv6 addresses count by their /64; IPv4-mapped addresses as IPv4', () => {
    assert.equal(addressKey('2001:db8:0:1::5'), addressKey('2001:db8:0:1:ffff::9'));
    assert.notEqual(addressKey('2001:db8:0:1::5'), addressKey('2001:db8:0:2::5'));
    assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  });

  it('an allow-listed IPv6 host is not shut out by a ban its /64 neighbour earned', () => {
    let now = 1_000_000;
    const guard = new Guard({ allow: ['2001:db8::1'], maxFailuresPerAddress: 3 }, undefined, () => now);
    const authenticate = guard.wrap(refuse);
    for (let i = 0; i < 3; i++) authenticate(request('2001:db8::2'));
    const accept = guard.hooks().acceptConnection!;
    assert.equal(accept({ remoteAddress: '2001:db8::2', remotePort: 1 }, 'l', stream), false, 'the neighbour is banned');
    assert.equal(accept({ remoteAddress: '2001:db8::1', remotePort: 1 }, 'l', stream), true, 'the allow-listed host is not');
    now += 1;
  });

  it('answers still in flight when the ban falls do not escalate it', () => {
    const now = 1_000_000;
    const guard = new Guard({ maxFailuresPerAddress: 10, banSeconds: 60 }, undefined, () => now);
    const authenticate = guard.wrap(refuse);
    for (let i = 0; i < 50; i++) authenticate(request('192.0.2.9'));
    const bans = guard.bans.list(now);
    assert.equal(bans.length, 1);
    assert.equal(bans[0]!.until! - bans[0]!.since, 60_000, 'the first offence: 60 s, not 960 s');
    assert.equal(guard.counters.bansIssued, 1);
  });

  it('one flooding address does not spend the global accept rate of everyone else', () => {
    const guard = new Guard({ connectionBurst: 100, connectionRate: 1, connectionBurstPerAddress: 5, connectionRatePerAddress: 1 }, undefined, () => 1_000_000);
    const accept = guard.hooks().acceptConnection!;
    let flooded = 0;
    for (let i = 0; i < 1000; i++) if (accept({ remoteAddress: '192.0.2.66', remotePort: i }, 'l', stream)) flooded++;
    assert.equal(flooded, 5, 'the flood gets its burst');
    assert.equal(accept({ remoteAddress: '192.0.2.67', remotePort: 1 }, 'l', stream), true, 'another address still gets in');
  });

  it('a ban on a user name applies to the user the credentials prove, whatever the CONNECT said', () => {
    const guard = new Guard({ bans: [{ kind: 'username', value: 'mallory' }] }, undefined, () => 1_000_000);
    const authenticate = guard.wrap(() => ({ ok: true, identity: { method: 'jwt', username: 'mallory' } }));
    assert.deepEqual(authenticate(request('192.0.2.5', { username: undefined })), { ok: false, reason: 'banned' });
    assert.deepEqual(authenticate(request('192.0.2.5', { username: 'someone-else' })), { ok: false, reason: 'banned' });
  });

  it('a listener that throws does not change the decision', () => {
    const guard = new Guard({ maxFailuresPerAddress: 1 }, undefined, () => 1_000_000);
    guard.on('event', () => {
      throw new Error('listener bug');
    });
    const authenticate = guard.wrap(refuse);
    assert.equal(authenticate(request('192.0.2.8')), false);
    assert.deepEqual(authenticate(request('192.0.2.8')), { ok: false, reason: 'banned' });
  });
});
