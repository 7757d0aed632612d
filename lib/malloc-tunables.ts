/**
 * Transparent huge pages for malloc (issue 16): what a reelcdn process's
 * environment should carry, and whether it does.
 *
 * A fill writes each byte into chunk memory (64 MiB Buffers, which V8 takes
 * from malloc, which takes them from the kernel by mmap). On a VM the first
 * touch of a 4 KiB page costs 12-14 µs, and an edge filling for the first time
 * touches every page of its RAM tier. With `glibc.malloc.hugetlb=1` (glibc
 * 2.35 and later) malloc asks for transparent huge pages on what it maps
 * (madvise), so a 64 MiB chunk takes 32 faults, not 16,384; the kernel must
 * allow THP (`/sys/kernel/mm/transparent_hugepage/enabled`: `always` or
 * `madvise`, the default of most distributions). Measured with the fill row
 * (docs/benchmarks.md): an empty edge filled at 135 MB/s against 88, a shard
 * read at 807 MB/s against 638.
 *
 * glibc reads GLIBC_TUNABLES once, when a process starts: a running process
 * cannot turn it on for itself. So it goes in the environment of what starts
 * reelcdn: the systemd units and the container image set it, the edge's
 * supervisor (`--supervise`) gives it to its workers, and `reelcdn doctor`
 * says when a process runs without it. An environment that names
 * `glibc.malloc.hugetlb` already (say `=0`, to measure without) is kept.
 */
export const HUGE_MALLOC = 'glibc.malloc.hugetlb=1'
/** the tunable in a GLIBC_TUNABLES list, and its value */
const HUGETLB = /(?:^|:)glibc\.malloc\.hugetlb=(\d*)/

/** `env` with glibc.malloc.hugetlb=1 added to its GLIBC_TUNABLES, unless that names glibc.malloc.hugetlb already. */
export function hugeMallocEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const have = env.GLIBC_TUNABLES ?? ''
  if (HUGETLB.test(have)) return env
  return { ...env, GLIBC_TUNABLES: have === '' ? HUGE_MALLOC : `${have}:${HUGE_MALLOC}` }
}

/** Whether this environment asks malloc for huge pages (any non-zero glibc.malloc.hugetlb). */
export function hasHugeMalloc(env: NodeJS.ProcessEnv): boolean {
  const m = HUGETLB.exec(env.GLIBC_TUNABLES ?? '')
  return m !== null && m[1] !== '' && m[1] !== '0'
}
