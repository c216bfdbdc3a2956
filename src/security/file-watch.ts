import { watch } from 'node:fs';
import path from 'node:path';

/** How long a file's changes must settle before it is read again (an editor writes in several steps). */
const SETTLE_MS = 50;

/**
 * Watches `file` through its directory, so a file replaced by rename (`mv`, an atomic write) is seen too, and calls
 * `changed` once its changes have settled. Returns the function that stops watching. The password files and the
 * payload key file use it; the TLS files have their own in src/server (several files, Kubernetes' `..data` swap).
 */
export function watchReplacedFile(file: string, changed: () => void, failed: (err: Error) => void): () => void {
  const name = path.basename(file);
  let settle: NodeJS.Timeout | undefined;
  const watcher = watch(path.dirname(file), (_event, entry) => {
    if (entry !== null && entry !== name) return;
    clearTimeout(settle);
    settle = setTimeout(changed, SETTLE_MS);
  });
  watcher.on('error', failed);
  watcher.unref();
  return () => {
    clearTimeout(settle);
    watcher.close();
  };
}
