import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

/**
 * The project's Node-API addons (native/*.c), built by `make build` into
 * dist/native/ with the machine's C compiler (the one `npm ci` already needs
 * for SQLite). Each is optional: `loadAddon` gives undefined when the file is
 * missing or does not load (another architecture, a sandbox that refuses its
 * set-up), and its module in lib/ falls back to a slower way, saying which in
 * its exported implementation name. The addons' own tests fail where the
 * build should have made them.
 */
export interface LoadedAddon<T> {
  addon: T | undefined
  /** why it is not there: undefined when it loaded */
  missing: string | undefined
}

export function loadAddon<T>(name: string): LoadedAddon<T> {
  const file = fileURLToPath(new URL(`../native/${name}.node`, import.meta.url))
  if (!existsSync(file)) return { addon: undefined, missing: `${file} was not built (make native)` }
  try {
    return { addon: createRequire(import.meta.url)(file) as T, missing: undefined }
  } catch (err) {
    return { addon: undefined, missing: `${file} did not load: ${(err as Error).message}` }
  }
}
