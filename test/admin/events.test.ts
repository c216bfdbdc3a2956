import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSecurityEvent, SecurityEvents, teeAudit } from '../../src/admin/events.js';
import { MemoryAudit, type AuditEvent } from '../../src/security/index.js';

/** The security feed's ring (GET /api/v1/events): what it keeps, in which order, and how a reader pages through it. */

const refused = (clientId: string): AuditEvent => ({ event: 'connect.refused', clientId, remoteAddress: '192.0.2.7', reason: 'bad password' });
const seqs = (page: { items: Array<{ seq: number }> }): number[] => page.items.map((e) => e.seq);

describe('security feed (src/admin/events.ts)', () => {
  it('numbers events from 1 in the order recorded, oldest first, with the time and the audit fields', () => {
    const feed = new SecurityEvents(10, () => Date.UTC(2026, 0, 2, 3, 4, 5));
    assert.deepEqual(feed.read(undefined, 100), { items: [], last_seq: 0, first_seq: 0, boot_id: feed.bootId });
    feed.record(refused('a'));
    feed.record({ event: 'guard.banned', clientId: '', ban: 'address 192.0.2.7', rule: 'api' });
    const page = feed.read(undefined, 100);
    assert.equal(page.last_seq, 2);
    assert.deepEqual(page.items[0], { seq: 1, time: '2026-01-02T03:04:05.000Z', event: 'connect.refused', clientId: 'a', remoteAddress: '192.0.2.7', reason: 'bad password' });
    assert.deepEqual(page.items.map((e) => e.event), ['connect.refused', 'guard.banned']);
  });

  it('after= gives only later events, limit= the first of them; without after, the newest', () => {
    const feed = new SecurityEvents(100);
    for (let i = 1; i <= 10; i++) feed.record(refused(`c${i}`));
    assert.deepEqual(seqs(feed.read(0, 3)), [1, 2, 3]);
    assert.deepEqual(seqs(feed.read(3, 3)), [4, 5, 6]);
    assert.deepEqual(seqs(feed.read(8, 100)), [9, 10]);
    assert.deepEqual(feed.read(10, 100), { items: [], last_seq: 10, first_seq: 1, boot_id: feed.bootId });
    // A reader ahead of the feed: nothing. A restarted broker is told by its boot_id, not by the numbers, which may
    // have passed the reader's again.
    assert.deepEqual(feed.read(50, 100), { items: [], last_seq: 10, first_seq: 1, boot_id: feed.bootId });
    const restarted = new SecurityEvents(100);
    for (let i = 1; i <= 12; i++) restarted.record(refused(`r${i}`));
    assert.notEqual(restarted.read(10, 100).boot_id, feed.read(10, 100).boot_id);
    assert.deepEqual(seqs(feed.read(undefined, 4)), [7, 8, 9, 10]);
  });

  it('keeps the last `capacity` events: older ones are gone, a reader behind them resumes at the oldest kept', () => {
    const feed = new SecurityEvents(5);
    for (let i = 1; i <= 12; i++) feed.record(refused(`c${i}`));
    assert.deepEqual(seqs(feed.read(0, 100)), [8, 9, 10, 11, 12]);
    assert.deepEqual(seqs(feed.read(2, 2)), [8, 9]);
    assert.deepEqual(seqs(feed.read(10, 100)), [11, 12]);
    assert.deepEqual(feed.read(undefined, 100).items.map((e) => e.clientId), ['c8', 'c9', 'c10', 'c11', 'c12']);
    assert.equal(feed.read(undefined, 100).last_seq, 12);
    assert.equal(feed.read(2, 2).first_seq, 8, 'a reader at 2 can see it missed 3 to 7');
    assert.throws(() => new SecurityEvents(0), RangeError);
  });

  it('keeps refusals, the guard, security changes and refused admin access; not accepted logins nor admin requests that passed', () => {
    const kept: AuditEvent[] = [
      refused('a'),
      { event: 'publish.refused', clientId: 'a', topic: 't' },
      { event: 'subscribe.refused', clientId: 'a', topic: 't/#' },
      { event: 'will.refused', clientId: 'a', topic: 'w' },
      { event: 'tls.refused', clientId: '', reason: 'no certificate' },
      { event: 'guard.banned', clientId: '' }, { event: 'guard.unbanned', clientId: '' }, { event: 'guard.rate-limited', clientId: 'a' },
      { event: 'security.change', clientId: '', target: 'user', name: 'dave', change: 'created' },
      { event: 'dynsec.command', clientId: 'admin', action: 'createClient' },
      { event: 'admin.request', clientId: '', principal: 'unauthenticated', httpMethod: 'GET', path: '/api/v1/clients', status: 401 },
      { event: 'admin.request', clientId: '', principal: 'token:reader', httpMethod: 'DELETE', path: '/api/v1/clients/x', status: 403 },
    ];
    const dropped: AuditEvent[] = [
      { event: 'connect.accepted', clientId: 'a' },
      { event: 'connect.anonymous', clientId: 'b' },
      { event: 'admin.request', clientId: '', principal: 'user:root', httpMethod: 'GET', path: '/metrics', status: 200 },
      // A wrong admin password is in the feed once already: the chain's connect.refused on the listener admin.
      { event: 'admin.request', clientId: '', principal: 'user:root', httpMethod: 'GET', path: '/api/v1/broker', status: 401 },
    ];
    for (const e of kept) assert.equal(isSecurityEvent(e), true, JSON.stringify(e));
    for (const e of dropped) assert.equal(isSecurityEvent(e), false, JSON.stringify(e));
    const feed = new SecurityEvents();
    for (const e of [...dropped, ...kept]) feed.record(e);
    assert.deepEqual(feed.read(0, 1000).items.map((e) => e.event), kept.map((e) => e.event));
  });

  it('cuts text fields longer than 256 characters: a flood of 64 KiB client identifiers keeps the feed small', () => {
    const feed = new SecurityEvents(10);
    const long = 'x'.repeat(60_000);
    for (let i = 0; i < 20; i++) feed.record({ event: 'connect.refused', clientId: long, username: long, remoteAddress: '192.0.2.7', reason: 'bad password' });
    const page = feed.read(0, 10);
    assert.equal(page.items.length, 10);
    for (const e of page.items) {
      assert.equal(e.clientId, `${'x'.repeat(256)}…`);
      assert.equal(e.username, `${'x'.repeat(256)}…`);
      assert.equal(e.reason, 'bad password', 'short fields as they were');
    }
    assert.ok(JSON.stringify(page).length < 10 * 1000, 'the whole answer stays small');
  });

  it('teeAudit records every event into each sink: the audit trail keeps what the feed leaves out', () => {
    const trail = new MemoryAudit();
    const feed = new SecurityEvents();
    const audit = teeAudit(trail, feed);
    audit.record({ event: 'connect.accepted', clientId: 'a' });
    audit.record(refused('b'));
    assert.deepEqual(trail.events.map((e) => e.event), ['connect.accepted', 'connect.refused']);
    assert.deepEqual(feed.read(0, 10).items.map((e) => e.clientId), ['b']);
  });
});
