import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.js';

describe('config: MQTT 5 capabilities', () => {
  it('maps every capabilities key to the broker option of the same meaning', () => {
    const { broker } = parseConfig([
      'capabilities:',
      '  maximum_qos: 1',
      '  retain_available: false',
      '  wildcard_subscription_available: false',
      '  subscription_identifiers_available: false',
      '  shared_subscription_available: false',
      '  topic_alias_maximum: 10',
      '  outgoing_topic_aliases: 5',
      '  receive_maximum: 100',
      '  server_keep_alive: 30',
      '  maximum_session_expiry_interval: 3600',
    ].join('\n'), 'caps.yaml');
    assert.deepEqual(broker.capabilities, {
      maximumQoS: 1,
      retainAvailable: false,
      wildcardSubscriptionAvailable: false,
      subscriptionIdentifiersAvailable: false,
      sharedSubscriptionAvailable: false,
      topicAliasMaximum: 10,
      outgoingTopicAliases: 5,
      receiveMaximum: 100,
      serverKeepAlive: 30,
      maximumSessionExpiryInterval: 3600,
    });
  });

  it('names the file, line and key of an invalid capability', () => {
    assert.throws(
      () => parseConfig('sys_interval: 5\ncapabilities:\n  maximum_qos: 3\n', 'caps.yaml'),
      (err: unknown) => err instanceof ConfigError && err.line === 3 && err.key === 'capabilities.maximum_qos' && /one of 0, 1, 2/.test(err.message),
    );
    assert.throws(
      () => parseConfig('capabilities:\n  receive_maximum: 0\n', 'caps.yaml'),
      (err: unknown) => err instanceof ConfigError && err.line === 2 && err.key === 'capabilities.receive_maximum',
    );
  });
});
