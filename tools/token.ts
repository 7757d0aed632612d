import { Command, InvalidArgumentError } from 'commander'
import { fail } from '../lib/cli.js'
import { loadConfig } from '../lib/config/config.js'
import { ConfigError } from '../lib/errors.js'
import { loadKeyRing, signViewer } from '../lib/security/tokens.js'

/**
 * `reelcdn token viewer ID`: mints a viewer credential for an account's own
 * user id, what an operator's sign-in service hands its app so that /v1/play
 * resumes that user's sessions (lib/security/tokens.ts signViewer). The keys come from
 * REELCDN_TOKEN_KEYS or --keys-file (default: router.tokenKeysFile of the
 * --config file), never a flag's value.
 */
const VIEWER = /^[A-Za-z0-9._:@-]{1,128}$/

function days(v: string): number {
  const n = Number(v)
  if (!/^[0-9]+(\.[0-9]+)?$/.test(v) || !(n > 0) || n > 3650) throw new InvalidArgumentError('expected a number of days from 1 to 3650')
  return n
}

export function tokenCommand(): Command {
  const cmd = new Command('token')
    .summary('mint credentials signed with the play-token keys')
    .description('Mint credentials signed with the play-token keys (REELCDN_TOKEN_KEYS, or the file of --keys-file / ' +
      'router.tokenKeysFile). Prints the credential on stdout.')
  const viewer = new Command('viewer')
    .summary('a viewer credential for an account\'s user id')
    .description('Print a viewer credential for ID: /v1/play/{contentId}?viewer=<credential> then issues tokens for ' +
      'that viewer and offers its resume point. A bare id is refused there: anyone could claim it.')
    .argument('<id>', 'the viewer id: 1-128 characters of [A-Za-z0-9._:@-]')
    .option('--days <n>', 'lifetime in days', days, 365)
    .option('-c, --config <file>', 'JSON config file, layered over config/default.json, whose router.tokenKeysFile holds the keys, ' +
      'e.g. the <data-dir>/cluster.json `reelcdn cluster` writes (default: none)')
    .option('--keys-file <file>', 'file holding the token keys (kid:secret,...; the first signs) (default: router.tokenKeysFile of the config)')
    .action((id: string, o: { days: number; keysFile?: string; config?: string }) => {
      try {
        if (!VIEWER.test(id)) throw new ConfigError(`viewer id ${JSON.stringify(id)}: expected 1-128 characters of [A-Za-z0-9._:@-]`)
        const file = o.keysFile ?? loadConfig({ file: o.config, env: process.env }).router.tokenKeysFile
        const ring = loadKeyRing(file, process.env)
        if (!ring) throw new ConfigError('no token keys: set REELCDN_TOKEN_KEYS, pass --keys-file, or --config with router.tokenKeysFile (a cluster\'s <data-dir>/cluster.json)')
        process.stdout.write(signViewer(ring, id, Math.floor(Date.now() / 1000 + o.days * 86400)) + '\n')
      } catch (err) {
        fail(err)
      }
    })
  cmd.addCommand(viewer)
  return cmd
}
