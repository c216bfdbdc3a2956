/** A storage problem, naming the file, directory or Redis address concerned. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  /** `code`: the underlying error's code where one matters to the caller (SQLITE_FULL...). */
  constructor(readonly path: string, problem: string, readonly code?: string) {
    super(`${path}: ${problem}`);
  }
}
