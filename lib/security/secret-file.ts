import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs'
import { chmod, rename, rm, writeFile } from 'node:fs/promises'
import { ConfigError } from '../errors.js'

/**
 * Files that hold secrets (tokens, play-token keys): read only when private,
 * written private.
 *
 * A secret file's group and others get no permission at all: reading it leaks
 * the secret, writing it replaces it (a token the writer then knows). Every
 * service reads its secret files through `readSecretFile` (lib/auth.ts,
 * lib/tokens.ts), and `reelcdn cluster` writes the ones it generates through
 * `writeSecretFile` (tools/cluster-members.ts), so a file left open by a copy,
 * an editor or a umask is refused where it is used, naming the file and its
 * mode, rather than trusted quietly.
 *
 * Writing: a mode given to open() applies only when the file is created and is
 * cut by the umask, so rewriting an existing file (an emptied token file, one
 * created 0644 by hand) kept its old mode. The secret is written to a new file
 * beside it (created exclusively, then chmod 0600 whatever the umask) and
 * renamed over the old one, so it is never readable by others, even for a
 * moment, and the file's mode is 0600 after every write.
 */
const OPEN_TO_OTHERS = 0o077

export class SecretFileModeError extends ConfigError {
  override name = 'SecretFileModeError'
  /** its permission bits */
  readonly mode: number
  constructor(readonly file: string, mode: number) {
    super(`${file} has mode ${octal(mode)}: a secret file must not be readable or writable by its group or others; run chmod 600 ${file}`)
    this.mode = mode & 0o777
  }
}

const octal = (mode: number) => `0${(mode & 0o777).toString(8).padStart(3, '0')}`

/** The text of the secret file `file`; throws SecretFileModeError if its group or others have any permission on it. */
export function readSecretFile(file: string): string {
  const fd = openSync(file, 'r')
  try {
    // the mode of the file opened, not of a path that could be swapped between a stat and the read
    const mode = fstatSync(fd).mode
    if (mode & OPEN_TO_OTHERS) throw new SecretFileModeError(file, mode)
    return readFileSync(fd, 'utf8')
  } finally {
    closeSync(fd)
  }
}

/** Writes `text` to `file`, mode 0600, replacing the file whole (see above). */
export async function writeSecretFile(file: string, text: string): Promise<void> {
  const aside = `${file}.${process.pid}.tmp`
  // a file left aside by a crash could have any mode: never write a secret into it
  await rm(aside, { force: true })
  try {
    await writeFile(aside, text, { mode: 0o600, flag: 'wx' })
    await chmod(aside, 0o600)
    await rename(aside, file)
  } catch (err) {
    await rm(aside, { force: true })
    throw err
  }
}
