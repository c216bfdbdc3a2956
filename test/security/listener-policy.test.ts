import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { anonymousPolicy, isLoopbackHost } from '../../src/security/listener-policy.js';

describe('listener anonymous policy (secure by default)', () => {
  const policy = (host: string, allowAnonymous: boolean | undefined, authenticationConfigured: boolean) =>
    anonymousPolicy({ name: 'l', host, allowAnonymous, authenticationConfigured });

  it('loopback: open while nothing authenticates, closed once authentication is configured, unless said otherwise', () => {
    assert.equal(policy('127.0.0.1', undefined, false).allowAnonymous, true);
    assert.equal(policy('127.0.0.1', undefined, true).allowAnonymous, false);
    assert.equal(policy('::1', true, true).allowAnonymous, true);
    assert.equal(policy('localhost', false, false).allowAnonymous, false);
  });

  it('any other address: refuses to start without authentication; anonymous only when explicitly allowed, with a warning', () => {
    assert.throws(() => policy('0.0.0.0', undefined, false), /refusing to listen/);
    assert.equal(policy('0.0.0.0', undefined, true).allowAnonymous, false);
    const open = policy('192.0.2.1', true, false);
    assert.equal(open.allowAnonymous, true);
    assert.match(open.warning!, /reachable from the network/);
  });

  it('recognises loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(host), true, host);
    for (const host of ['0.0.0.0', '10.0.0.1', '::', '::ffff:10.0.0.1']) assert.equal(isLoopbackHost(host), false, host);
  });
});
