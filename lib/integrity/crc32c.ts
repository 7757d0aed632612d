import { crc32c as portableCrc32c } from '@node-rs/crc32'
import { loadAddon } from '../native.js'

/**
 * CRC32C, the block checksum every hop verifies (lib/integrity/block-hasher.ts):
 * `crc32c(data, initial = 0)`, where `initial` continues a previous result
 * over more bytes.
 *
 * It is the project's own addon (native/crc32c.c, built by `make build` into
 * dist/native/) when that was built: the CPU's CRC32 instruction, about 17 GB/s
 * here against 3–4 GB/s for @node-rs/crc32, which every byte a shard serves,
 * the router relays and an edge fills passes through. Without a C compiler at
 * build time the addon is missing and @node-rs/crc32, which gives the same
 * answers, is used instead; `CRC32C_IMPLEMENTATION` says which, and the
 * addon's test fails on a machine where the build should have made it
 * (`make native` builds it alone).
 */
export type Crc32c = (data: Uint8Array, initial?: number) => number

interface Addon {
  crc32c(data: Uint8Array, initial?: number, software?: boolean): number
  hardware: boolean
}

const { addon, missing } = loadAddon<Addon>('crc32c')

/** why the addon is not used (undefined when it is) */
export const CRC32C_ADDON_MISSING = missing

export const CRC32C_IMPLEMENTATION: 'addon (sse4.2)' | 'addon (software)' | '@node-rs/crc32' = addon
  ? addon.hardware ? 'addon (sse4.2)' : 'addon (software)'
  : '@node-rs/crc32'

export const crc32c: Crc32c = addon ? addon.crc32c : portableCrc32c

/** the addon's table-driven loop, for its tests (the same answers without the instruction); undefined without the addon */
export const softwareCrc32c: Crc32c | undefined = addon ? (data, initial = 0) => addon.crc32c(data, initial, true) : undefined

export { portableCrc32c }
