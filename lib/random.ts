/**
 * Seeded randomness: mulberry32, a small, fast 32-bit generator whose runs a
 * seed reproduces (load tests, traces, tests that cut data at random). Not
 * for anything secret: node:crypto is.
 */
export type Rng = () => number

/** Numbers in [0, 1), the same sequence for the same seed. */
export function mulberry32(seed: number): Rng {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) | 0
    let x = Math.imul(s ^ (s >>> 15), 1 | s)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
