import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEntry, createSecurity, formatEntry, MemoryAudit, type Security } from '../../src/security/index.js';
import { RawClient, startBroker, type TestBroker } from '../helpers/broker.js';

/**
 * An unknown user and a wrong password must be indistinguishable: same CONNACK
 * (4) and the same time. Attempts alternate over real TCP; the two samples are
 * compared with a Mann-Whitney U test (rank-based, so a few slow outliers on a
 * busy CI machine do not decide it) and by their medians.
 */

const ATTEMPTS = 40;

async function refusalTime(port: number, username: string, password: string): Promise<{ ms: number; code: number }> {
  const raw = await RawClient.connect(port);
  try {
    const t0 = process.hrtime.bigint();
    raw.send({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: `t${Math.random()}`, username, password: Buffer.from(password) });
    const connack = (await raw.nextPacket(5000)) as { returnCode: number };
    return { ms: Number(process.hrtime.bigint() - t0) / 1e6, code: connack.returnCode };
  } finally {
    raw.destroy();
  }
}

/** Two-sided Mann-Whitney U test, normal approximation; returns the z score. */
function mannWhitneyZ(a: number[], b: number[]): number {
  const all = [...a.map((v) => ({ v, from: 0 })), ...b.map((v) => ({ v, from: 1 }))].sort((x, y) => x.v - y.v);
  let rankSumA = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j < all.length && all[j]!.v === all[i]!.v) j++;
    const rank = (i + j + 1) / 2; // average rank for ties
    for (let k = i; k < j; k++) if (all[k]!.from === 0) rankSumA += rank;
    i = j;
  }
  const n1 = a.length;
  const n2 = b.length;
  const u = rankSumA - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  const sd = Math.sqrt((n1 * n2 * (n1 + n2 + 1)) / 12);
  return (u - mean) / sd;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};

describe('authentication timing', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-timing-'));
  let security: Security;
  let tb: TestBroker;
  before(async () => {
    const file = path.join(dir, 'pw');
    // Cheaper than the default cost so the test is quick, yet far slower than no hashing at all.
    writeFileSync(file, `${formatEntry(await createEntry('alice', Buffer.from('right'), { logN: 13, r: 8, p: 1 }))}\n`);
    security = createSecurity({ authentication: [{ type: 'passwordFile', path: file, watch: false }], audit: new MemoryAudit() }, { info() {}, warn() {}, error() {} });
    tb = await startBroker({ hooks: security.hooks });
  });
  after(async () => {
    await tb.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('unknown-user and wrong-password refusals give the same answer and are indistinguishable in time', async () => {
    for (let i = 0; i < 5; i++) await refusalTime(tb.port, 'alice', 'warm-up'); // JIT and thread pool warm-up
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < ATTEMPTS; i++) {
      // Alternate the order so that drift on the machine hits both alike.
      const tryUnknown = (): Promise<{ ms: number; code: number }> => refusalTime(tb.port, `nobody${i}`, 'guess');
      const tryWrong = (): Promise<{ ms: number; code: number }> => refusalTime(tb.port, 'alice', 'guess');
      const u = i % 2 === 0 ? await tryUnknown() : undefined;
      const w = await tryWrong();
      const u2 = u ?? (await tryUnknown());
      assert.equal(u2.code, 4, 'unknown user: CONNACK 4');
      assert.equal(w.code, 4, 'wrong password: CONNACK 4');
      unknown.push(u2.ms);
      wrong.push(w.ms);
    }
    const z = mannWhitneyZ(unknown, wrong);
    const [mu, mw] = [median(unknown), median(wrong)];
    const detail = `medians ${mu.toFixed(2)} vs ${mw.toFixed(2)} ms, z = ${z.toFixed(2)}`;
    // |z| < 3.3 is p > 0.001: no evidence the two differ. The medians also agree within 25%.
    assert.ok(Math.abs(z) < 3.3, `the distributions differ: ${detail}`);
    assert.ok(Math.abs(mu - mw) / Math.max(mu, mw) < 0.25, `the medians differ: ${detail}`);
    assert.ok(mw > 2, `hashing takes measurable time, so the comparison means something: ${detail}`);
  });

  it('a flood of CONNECTs with made-up credentials waits its turn (none turned away busy), and a client from another address is served meanwhile', async () => {
    // 40 at once from one address: every one is hashed in turn and refused as bad credentials, none turned away busy.
    const started = Date.now();
    const flooding = Promise.all(Array.from({ length: 40 }, (_, i) => refusalTime(tb.port, `flood${i}`, 'guess')));
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Meanwhile a client from another address takes its turn: it does not wait for the flood to be done.
    const raw = await RawClient.connect(tb.port, 4, '127.0.0.2');
    let legitMs: number;
    try {
      raw.send({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'legit', username: 'alice', password: Buffer.from('right') });
      assert.equal(((await raw.nextPacket(9000)) as { returnCode: number }).returnCode, 0);
      legitMs = Date.now() - started;
    } finally {
      raw.destroy();
    }
    const flood = await flooding;
    const floodMs = Date.now() - started;
    assert.deepEqual([...new Set(flood.map((r) => r.code))], [4], 'each made-up credential was checked and refused');
    assert.ok(legitMs <= floodMs, `the other address was served (in ${legitMs} ms) while the flood was still being checked (${floodMs} ms)`);
  });
});
