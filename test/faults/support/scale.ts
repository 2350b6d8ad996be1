/**
 * How much the fault suite does. `npm test` runs a seeded reduced set; `npm run test:faults` sets
 * FAULTS_SCALE=full. FAULTS_SEED picks which crash points and generated cases the reduced set samples
 * (and seeds fast-check), so a failing run is reproduced with the same seed.
 */
export const FULL = process.env['FAULTS_SCALE'] === 'full';

/** Seed of this suite run (printed by every test that samples). */
export const SEED =
  Number.isInteger(Number(process.env['FAULTS_SEED'])) && process.env['FAULTS_SEED'] !== undefined
    ? Number(process.env['FAULTS_SEED'])
    : 20261201;

/** mulberry32: a small seeded generator, so samples are reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` items of `items`, chosen by `seed`, in their original order (all of them when count >= length). */
export function sample<T>(items: readonly T[], count: number, seed: number = SEED): T[] {
  if (count >= items.length) return [...items];
  const random = seededRandom(seed);
  const indexes = items.map((_, i) => i);
  for (let i = indexes.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [indexes[i], indexes[j]] = [indexes[j] as number, indexes[i] as number];
  }
  return indexes
    .slice(0, count)
    .sort((a, b) => a - b)
    .map((i) => items[i] as T);
}

/** Full or reduced count. */
export function scaled(full: number, reduced: number): number {
  return FULL ? full : reduced;
}
