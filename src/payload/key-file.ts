import { readFileSync } from 'node:fs';
import { watchReplacedFile } from '../security/file-watch.js';
import { parsePayloadKeys, type PayloadKeys } from './keys.js';

interface Logger {
  info(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * The payload key file in force: read at start, again when it changes on disk (a file replaced by rename too) and
 * on SIGHUP. A file that does not parse leaves the keys in force, and says why.
 */
export class PayloadKeyFile {
  private current: PayloadKeys;
  /** Stops watching the file (set while it is watched). */
  private unwatch: (() => void) | undefined;

  constructor(readonly file: string, private readonly logger?: Logger) {
    this.current = parsePayloadKeys(readFileSync(file, 'utf8'), file);
  }

  keys(): PayloadKeys {
    return this.current;
  }

  /** Reads the file again; false (and the old keys kept) if it cannot be read or does not parse. */
  reload(): boolean {
    try {
      this.current = parsePayloadKeys(readFileSync(this.file, 'utf8'), this.file);
      this.logger?.info({ file: this.file, identities: this.current.size }, 'payload key file reloaded');
      return true;
    } catch (err) {
      this.logger?.error({ file: this.file, err: (err as Error).message }, 'payload key file not reloaded; the previous keys stay in force');
      return false;
    }
  }

  watch(): void {
    this.unwatch ??= watchReplacedFile(this.file, () => this.reload(), (err) => this.logger?.error({ file: this.file, err: err.message }, 'cannot watch the payload key file'));
  }

  close(): void {
    this.unwatch?.();
    this.unwatch = undefined;
  }
}
