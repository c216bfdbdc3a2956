import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { connectClient, startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { killAll, spawnProc, type Proc } from '../helpers/process.js';
import { disconnectedBy, MosquittoClients, subLines } from '../helpers/mosquitto.js';

/**
 * Interoperability with the Eclipse Mosquitto command line clients
 * (mosquitto_pub / mosquitto_sub 2.x), over MQTT 3.1.1 and MQTT 3.1.
 */

const VERSIONS = [
  { flag: 'mqttv311', level: 4, name: 'MQTT 3.1.1' },
  { flag: 'mqttv31', level: 3, name: 'MQTT 3.1' },
] as const;

/** Output format of mosquitto_sub: QoS, retain flag, topic, payload. */
const FORMAT = '%q %r %t %p';

let tb: TestBroker;
const mosq = new MosquittoClients(() => tb);
const uid = (prefix: string): string => mosq.uid(prefix);
const base = (): string[] => mosq.base();
const startSub = (version: string, clientId: string, args: string[], limitSeconds = 5): Promise<Proc> =>
  mosq.startSub(version, clientId, args, limitSeconds);
const pub = (version: string, args: string[], input?: string | Buffer): Promise<void> => mosq.pub(version, args, input);

describe('interop: mosquitto_pub / mosquitto_sub', () => {
  before(async () => {
    tb = await startBroker();
  });
  afterEach(() => killAll());
  after(async () => {
    await killAll();
    await tb.close();
  });

  for (const v of VERSIONS) {
    describe(v.name, () => {
      it(`mosquitto clients connect with protocol level ${v.level}`, async () => {
        const id = uid('lvl');
        const seen = new Promise<number>((resolve) => {
          const onConnected = (client: { id: string; protocolVersion: number }): void => {
            if (client.id !== id) return;
            tb.broker.off('clientConnected', onConnected);
            resolve(client.protocolVersion);
          };
          tb.broker.on('clientConnected', onConnected);
        });
        await pub(v.flag, ['-i', id, '-t', `interop/${id}`, '-m', 'x']);
        assert.equal(await seen, v.level);
      });

      for (const qos of [0, 1, 2] as const) {
        it(`[MQTT-4.3.${qos + 1}-1] mosquitto_pub → mosquitto_sub round trip at QoS ${qos}`, async () => {
          const topic = `interop/${v.flag}/qos${qos}/${uid('t')}`;
          const sub = await startSub(v.flag, uid('sub'), ['-q', String(qos), '-t', topic, '-C', '1', '-F', FORMAT]);
          await pub(v.flag, ['-i', uid('pub'), '-q', String(qos), '-t', topic, '-m', `hello qos ${qos}`]);
          assert.deepEqual(await subLines(sub), [`${qos} 0 ${topic} hello qos ${qos}`]);
        });

        it(`[MQTT-4.6.0-6] QoS ${qos}: 30 messages from one mosquitto_pub arrive complete and in order`, async () => {
          const topic = `interop/${v.flag}/seq${qos}/${uid('t')}`;
          const count = 30;
          const sub = await startSub(v.flag, uid('sub'), ['-q', String(qos), '-t', topic, '-C', String(count), '-F', '%q %p']);
          const lines = Array.from({ length: count }, (_, i) => `msg-${i}`);
          // -l: one message per line of standard input, over one connection.
          await pub(v.flag, ['-i', uid('pub'), '-q', String(qos), '-t', topic, '-l'], `${lines.join('\n')}\n`);
          assert.deepEqual(await subLines(sub), lines.map((l) => `${qos} ${l}`));
        });
      }

      it('[MQTT-3.8.4-6] delivered QoS is the minimum of published and granted QoS', async () => {
        const topic = `interop/${v.flag}/min/${uid('t')}`;
        const subQos1 = await startSub(v.flag, uid('s1'), ['-q', '1', '-t', topic, '-C', '2', '-F', '%q %p']);
        const subQos2 = await startSub(v.flag, uid('s2'), ['-q', '2', '-t', topic, '-C', '2', '-F', '%q %p']);
        await pub(v.flag, ['-i', uid('pub'), '-q', '2', '-t', topic, '-m', 'two']);
        await pub(v.flag, ['-i', uid('pub'), '-q', '0', '-t', topic, '-m', 'zero']);
        assert.deepEqual(await subLines(subQos1), ['1 two', '0 zero']);
        assert.deepEqual(await subLines(subQos2), ['2 two', '0 zero']);
      });

      it('[MQTT-3.3.5-1] wildcard subscriptions (+ and #) match, overlapping filters deliver once', async () => {
        const root = `interop/${v.flag}/wild/${uid('t')}`;
        const sub = await startSub(v.flag, uid('sub'), [
          '-q', '1', '-t', `${root}/+/temp`, '-t', `${root}/#`, '-C', '3', '-F', '%t %p',
        ]);
        await pub(v.flag, ['-i', uid('pub'), '-q', '1', '-t', `${root}/kitchen/temp`, '-m', 'a']);
        await pub(v.flag, ['-i', uid('pub'), '-q', '1', '-t', `${root}/kitchen/humidity`, '-m', 'b']);
        await pub(v.flag, ['-i', uid('pub'), '-q', '1', '-t', `${root}`, '-m', 'c']);
        assert.deepEqual(await subLines(sub), [`${root}/kitchen/temp a`, `${root}/kitchen/humidity b`, `${root} c`]);
      });

      it('a 300 kB payload (from stdin, -s) arrives intact', async () => {
        const topic = `interop/${v.flag}/big/${uid('t')}`;
        const payload = randomBytes(150_000).toString('hex');
        const sub = await startSub(v.flag, uid('sub'), ['-q', '1', '-t', topic, '-C', '1', '-N', '-F', '%p']);
        await pub(v.flag, ['-i', uid('pub'), '-q', '1', '-t', topic, '-s'], payload);
        const status = await sub.waitExit(8000);
        assert.equal(status.code, 0, sub.stderr);
        assert.equal(sub.stdout.length, payload.length);
        assert.ok(sub.stdout === payload, 'payload bytes differ');
      });

      it('[MQTT-3.3.1-5][MQTT-3.3.1-6][MQTT-3.3.1-8] a retained message reaches a later subscriber with retain=1', async () => {
        const topic = `interop/${v.flag}/retained/${uid('t')}`;
        await pub(v.flag, ['-i', uid('pub'), '-q', '1', '-r', '-t', topic, '-m', 'kept']);
        const sub = await startSub(v.flag, uid('sub'), ['-q', '1', '-t', topic, '-C', '1', '-F', FORMAT]);
        assert.deepEqual(await subLines(sub), [`1 1 ${topic} kept`]);
      });

      it('[MQTT-3.3.1-9] a retained message published to an existing subscriber arrives with retain=0', async () => {
        const topic = `interop/${v.flag}/retained-live/${uid('t')}`;
        const sub = await startSub(v.flag, uid('sub'), ['-q', '1', '-t', topic, '-C', '1', '-F', FORMAT]);
        await pub(v.flag, ['-i', uid('pub'), '-q', '1', '-r', '-t', topic, '-m', 'live']);
        assert.deepEqual(await subLines(sub), [`1 0 ${topic} live`]);
        // ...and it was still stored for later subscribers.
        const later = await startSub(v.flag, uid('sub'), ['-q', '1', '-t', topic, '-C', '1', '-F', FORMAT]);
        assert.deepEqual(await subLines(later), [`1 1 ${topic} live`]);
      });

      it('[MQTT-3.3.1-7] a retained QoS 0 message replaces the earlier retained message', async () => {
        const topic = `interop/${v.flag}/retained-replace/${uid('t')}`;
        await pub(v.flag, ['-i', uid('pub'), '-q', '1', '-r', '-t', topic, '-m', 'first']);
        await pub(v.flag, ['-i', uid('pub'), '-q', '0', '-r', '-t', topic, '-m', 'second']);
        await waitFor(() => tb.broker.retained.size > 0);
        const sub = await startSub(v.flag, uid('sub'), ['-q', '2', '-t', topic, '-C', '1', '-F', FORMAT]);
        assert.deepEqual(await subLines(sub), [`0 1 ${topic} second`]);
      });

      it('[MQTT-3.3.1-10][MQTT-3.3.1-11] a zero-length retained message (-r -n) clears the retained message', async () => {
        const topic = `interop/${v.flag}/retained-clear/${uid('t')}`;
        await pub(v.flag, ['-i', uid('pub'), '-q', '1', '-r', '-t', topic, '-m', 'gone soon']);
        await pub(v.flag, ['-i', uid('pub'), '-q', '1', '-r', '-t', topic, '-n']);
        const sub = await startSub(v.flag, uid('sub'), ['-q', '1', '-t', topic, '-C', '1', '-F', FORMAT]);
        // Had the retained message survived, it would have arrived before this marker.
        await pub(v.flag, ['-i', uid('pub'), '-q', '1', '-t', topic, '-m', 'marker']);
        assert.deepEqual(await subLines(sub), [`1 0 ${topic} marker`]);
      });

      it('[MQTT-3.1.2-8] the will of a mosquitto_sub killed with SIGKILL is published', async () => {
        const willTopic = `interop/${v.flag}/will/${uid('t')}`;
        const receiver = await startSub(v.flag, uid('rcv'), ['-q', '1', '-t', willTopic, '-C', '1', '-F', FORMAT]);
        const mqttjs = await connectClient(tb.url, {
          protocolVersion: v.level, protocolId: v.level === 3 ? 'MQIsdp' : 'MQTT', clientId: uid('js'),
        });
        try {
          await mqttjs.subscribeAsync(willTopic, { qos: 1 });
          const viaMqttJs = new Promise<[string, string, number]>((resolve) => {
            mqttjs.once('message', (t, p, packet) => resolve([t, p.toString(), packet.qos]));
          });
          const willerId = uid('will');
          const willer = await startSub(v.flag, willerId, [
            '-t', `interop/${v.flag}/will-dummy`, '--will-topic', willTopic, '--will-payload', 'died', '--will-qos', '1',
          ], 10);
          willer.kill('SIGKILL');
          assert.deepEqual(await subLines(receiver), [`1 0 ${willTopic} died`]);
          assert.deepEqual(await viaMqttJs, [willTopic, 'died', 1]);
        } finally {
          await mqttjs.endAsync();
        }
      });

      it('[MQTT-3.1.2-17] a will with --will-retain is stored as a retained message', async () => {
        const willTopic = `interop/${v.flag}/will-retain/${uid('t')}`;
        const willerId = uid('will');
        const willer = await startSub(v.flag, willerId, [
          '-t', `interop/${v.flag}/will-dummy`, '--will-topic', willTopic, '--will-payload', 'last words', '--will-qos', '2', '--will-retain',
        ], 10);
        const gone = disconnectedBy(tb.broker, willerId);
        willer.kill('SIGKILL');
        await gone;
        const sub = await startSub(v.flag, uid('sub'), ['-q', '2', '-t', willTopic, '-C', '1', '-F', FORMAT]);
        assert.deepEqual(await subLines(sub), [`2 1 ${willTopic} last words`]);
      });

      it('[MQTT-3.1.2-10] the will of a client that sends DISCONNECT is not published', async () => {
        const willTopic = `interop/${v.flag}/will-clean/${uid('t')}`;
        const receiver = await startSub(v.flag, uid('rcv'), ['-q', '1', '-t', willTopic, '-C', '1', '-F', FORMAT]);
        const pubId = uid('pub');
        const gone = disconnectedBy(tb.broker, pubId);
        await pub(v.flag, [
          '-i', pubId, '-q', '1', '-t', `interop/${v.flag}/elsewhere`, '-m', 'x',
          '--will-topic', willTopic, '--will-payload', 'should not appear', '--will-qos', '1',
        ]);
        await gone;
        tb.broker.publish({ topic: willTopic, payload: 'marker', qos: 1 });
        assert.deepEqual(await subLines(receiver), [`1 0 ${willTopic} marker`]);
      });

      for (const qos of [1, 2] as const) {
        it(`[MQTT-3.1.2-4][MQTT-3.1.2-5] a persistent mosquitto_sub session (-c) receives QoS ${qos} messages published while offline`, async () => {
          const id = uid('per');
          const topic = `interop/${v.flag}/persistent${qos}/${uid('t')}`;
          // Subscribe, then disconnect as soon as the subscription is acknowledged (-E).
          const first = await startSub(v.flag, id, ['-c', '-q', String(qos), '-t', topic, '-E']);
          assert.equal((await first.waitExit(5000)).code, 0, first.stderr);
          await waitFor(() => tb.broker.sessions.get(id)?.connection === undefined, 3000, 'session offline');
          assert.ok(tb.broker.sessions.has(id), 'persistent session kept after disconnect');

          const messages = Array.from({ length: 8 }, (_, i) => `offline-${i}`);
          let routed = 0;
          const onPublish = (m: { topic: string }): void => {
            if (m.topic === topic) routed++;
          };
          tb.broker.on('publish', onPublish);
          try {
            await pub(v.flag, ['-i', uid('pub'), '-q', String(qos), '-t', topic, '-l'], `${messages.join('\n')}\n`);
            await waitFor(() => routed === messages.length, 3000, 'messages routed');
          } finally {
            tb.broker.off('publish', onPublish);
          }

          // Reconnect with the same id and clean session off: the queued messages arrive, in order.
          const second = spawnProc('mosquitto_sub', [
            ...base(), '-V', v.flag, '-i', id, '-c', '-q', String(qos), '-t', topic,
            '-C', String(messages.length), '-W', '5', '-F', '%q %p',
          ], { limitMs: 8000 });
          assert.deepEqual(await subLines(second), messages.map((m) => `${qos} ${m}`));
        });
      }

      it('[MQTT-3.1.2-6] a clean mosquitto_sub session does not receive messages published while it was offline', async () => {
        const id = uid('cln');
        const topic = `interop/${v.flag}/clean/${uid('t')}`;
        const first = await startSub(v.flag, id, ['-q', '1', '-t', topic, '-E']);
        assert.equal((await first.waitExit(5000)).code, 0, first.stderr);
        await waitFor(() => !tb.broker.sessions.has(id), 3000, 'clean session discarded');
        await pub(v.flag, ['-i', uid('pub'), '-q', '1', '-t', topic, '-m', 'missed']);
        const second = await startSub(v.flag, id, ['-q', '1', '-t', topic, '-C', '1', '-F', '%p']);
        tb.broker.publish({ topic, payload: 'fresh', qos: 1 });
        assert.deepEqual(await subLines(second), ['fresh']);
      });
    });
  }

  describe('$SYS topics', () => {
    let sys: TestBroker;
    let main: TestBroker;
    before(async () => {
      sys = await startBroker({ sysInterval: 1 });
      main = tb;
      tb = sys;
      await waitFor(() => sys.broker.retained.size > 0, 3000, '$SYS retained messages');
    });
    after(async () => {
      tb = main;
      await killAll();
      await sys.close();
    });

    it('mosquitto_sub reads the retained $SYS/broker/version', async () => {
      const sub = await startSub('mqttv311', uid('sys'), ['-t', '$SYS/broker/version', '-C', '1', '-F', '%r %t %p']);
      assert.deepEqual(await subLines(sub), [`1 $SYS/broker/version moat ${sys.broker.version}`]);
    });

    it('[MQTT-4.7.2-1] a "#" subscription does not receive $SYS topics', async () => {
      const sub = await startSub('mqttv31', uid('all'), ['-t', '#', '-C', '1', '-F', '%t %p']);
      sys.broker.publish({ topic: 'plain/topic', payload: 'marker' });
      assert.deepEqual(await subLines(sub), ['plain/topic marker']);
    });
  });

  it('an MQTT 3.1 publisher reaches an MQTT 3.1.1 subscriber and an MQTT.js client, and back', async () => {
    const topic = `interop/mixed/${uid('t')}`;
    const sub311 = await startSub('mqttv311', uid('s311'), ['-q', '2', '-t', topic, '-C', '2', '-F', '%q %p']);
    const sub31 = await startSub('mqttv31', uid('s31'), ['-q', '2', '-t', topic, '-C', '2', '-F', '%q %p']);
    const js = await connectClient(tb.url, { clientId: uid('js') });
    try {
      await js.subscribeAsync(topic, { qos: 2 });
      const jsGot: string[] = [];
      js.on('message', (_t, p) => jsGot.push(p.toString()));
      await pub('mqttv31', ['-i', uid('pub'), '-q', '2', '-t', topic, '-m', 'from 3.1']);
      await js.publishAsync(topic, 'from mqtt.js', { qos: 2 });
      assert.deepEqual(await subLines(sub311), ['2 from 3.1', '2 from mqtt.js']);
      assert.deepEqual(await subLines(sub31), ['2 from 3.1', '2 from mqtt.js']);
      await waitFor(() => jsGot.length === 2, 3000);
      assert.deepEqual(jsGot, ['from 3.1', 'from mqtt.js']);
    } finally {
      await js.endAsync();
    }
  });
});
