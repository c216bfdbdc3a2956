import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config/load.js';

/** Runs `fn`, asserts it throws a ConfigError and returns it. */
export function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError, nothing was thrown');
}
