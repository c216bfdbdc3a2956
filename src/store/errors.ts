/** A storage problem, naming the file, directory or Redis address concerned. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(readonly path: string, problem: string) {
    super(`${path}: ${problem}`);
  }
}
