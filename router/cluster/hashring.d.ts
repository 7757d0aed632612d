/** The parts of hashring@3 (ketama-compatible consistent hashing) that router/cluster/ring.ts uses. */
declare module 'hashring' {
  interface ServerSpec { weight?: number; vnodes?: number }
  interface HashRingOptions {
    /** hashes per weight-1 server; each gives `replicas` points */
    'vnode count'?: number
    compatibility?: 'ketama' | 'hash_ring'
    replicas?: number
    'max cache size'?: number
  }
  class HashRing {
    constructor(servers: Record<string, ServerSpec | number> | string[], algorithm?: string, options?: HashRingOptions)
    get(key: string): string | undefined
    /** up to `size` servers walking the ring clockwise from the key; distinct when `unique` (the default) */
    range(key: string, size?: number, unique?: boolean): string[]
    points(servers?: string[]): Record<string, number[]>
    readonly size: number
  }
  export = HashRing
}
