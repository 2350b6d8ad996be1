import { createHash } from 'node:crypto';

/** A small, fast, seeded PRNG (sfc32): the emulator's data must be the same bytes for the same seed. */
export type Random = () => number;

/** Four 32-bit seeds from any text (SHA-256, so related texts give unrelated streams). */
function seedWords(text: string): [number, number, number, number] {
  const digest = createHash('sha256').update(text).digest();
  return [digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)];
}

/** A PRNG returning floats in [0, 1), seeded from the given parts. */
export function seededRandom(...parts: Array<string | number>): Random {
  let [a, b, c, d] = seedWords(parts.join('\u001f'));
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  // Warm up: the first outputs of sfc32 are weakly mixed.
  for (let i = 0; i < 12; i++) next();
  return next;
}

export function randomInt(random: Random, minInclusive: number, maxInclusive: number): number {
  return minInclusive + Math.floor(random() * (maxInclusive - minInclusive + 1));
}

export function pick<T>(random: Random, items: readonly T[]): T {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new Error('pick() from an empty list');
  return item;
}

const HEX = '0123456789abcdef';

/** A version-4-shaped GUID drawn from the PRNG. */
export function randomGuid(random: Random): string {
  let out = '';
  for (let i = 0; i < 32; i++) {
    let digit = Math.floor(random() * 16);
    if (i === 12) digit = 4;
    if (i === 16) digit = 8 + (digit & 3);
    out += HEX[digit];
    if (i === 7 || i === 11 || i === 15 || i === 19) out += '-';
  }
  return out;
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export function randomCode(random: Random, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHANUMERIC[Math.floor(random() * ALPHANUMERIC.length)];
  return out;
}

/** A Graph-style eTag (17 letters and digits, like "WYjLro78HdMg6vUWR") derived from the data's identity. */
export function stableETag(identity: string): string {
  const letters = createHash('sha256')
    .update(identity)
    .digest('base64')
    .replace(/[^A-Za-z0-9]/g, '');
  return letters.slice(0, 17);
}
