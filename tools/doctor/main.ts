import { Command, Option } from 'commander'
import { runDoctor, ROLES, type Report, type Role } from './doctor.js'
import type { Finding } from './finding.js'

/**
 * `reelcdn doctor <role> --config FILE`: the command around tools/doctor/doctor.ts.
 * Prints one line per finding (and what to fix under each failure and warning),
 * or the report as JSON, and exits with a code a unit's ExecStartPre or a
 * provisioning script can act on.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, config: 78 } as const

const HELP_AFTER = `
Roles: shard (an origin shard, \`reelcdn origin\`), router, edge, and ingest (where
\`reelcdn ingest --renditions\` runs: ffmpeg, its work dir, the admin token).

Checks: the config (through the same loader and schema the services use), the
port (bound and released), the data dir (written to, as the service does at
start), disk space against what the role will fill, the open-file limit
against what the config needs, each secret file (present, not empty, mode
0600), TLS (the certificate's dates, the key's mode), ffmpeg (ingest), and the
clock (not before this install was built, NTP synchronised per timedatectl,
and, unless --offline, skew against the router or the shards from their Date
headers). Run it as the service's user: sudo -u reelcdn reelcdn doctor edge -c /etc/reelcdn/edge.json

Exit codes:
  0   every check passed (warnings are printed, and do not fail)
  1   a check failed: each failure says what to fix
  2   bad usage (an unknown role or option)
  78  the config is invalid, or a setting the service refuses at start (EX_CONFIG, as the services exit)`

export function doctorCommand(): Command {
  const cmd = new Command('doctor')
    .summary('check a config and this machine for a role, and say what to fix')
    .description('Checks a role\'s config and the environment it will run in, before it starts (docs/install.md, "doctor").')
    .argument('<role>', `${ROLES.join(', ')} (origin: shard)`)
    .option('-c, --config <file>', 'JSON config file, layered over config/default.json, as the service reads it (env REELCDN_* applies too) (default: none)')
    .addOption(new Option('--offline', 'skip the checks that ask other machines (the peers\' clock skew)'))
    .option('--json', 'print the report as JSON')
    .addHelpText('after', HELP_AFTER)
    .exitOverride(err => {
      // help and version exit 0; any other parse error is bad usage
      process.exit(err.exitCode === 0 ? 0 : EXIT.usage)
    })
  cmd.action(async (roleArg: string) => {
    const role = (roleArg === 'origin' ? 'shard' : roleArg) as Role
    if (!ROLES.includes(role)) {
      process.stderr.write(`reelcdn doctor: unknown role ${JSON.stringify(roleArg)}: expected ${ROLES.join(', ')}\n`)
      process.exitCode = EXIT.usage
      return
    }
    const o = cmd.opts<{ config?: string; offline?: boolean; json?: boolean }>()
    const report = await runDoctor(role, { file: o.config, env: process.env, offline: o.offline === true })
    process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : format(report))
    process.exitCode = exitCode(report)
  })
  return cmd
}

export function exitCode(r: Report): number {
  if (r.findings.some(f => f.check === 'config' && f.status === 'fail')) return EXIT.config
  return r.findings.some(f => f.status === 'fail') ? EXIT.failed : EXIT.ok
}

const MARK: Record<Finding['status'], string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' }

export function format(r: Report): string {
  const lines = [`reelcdn doctor ${r.role} (config ${r.config})`]
  for (const f of r.findings) {
    lines.push(`  ${MARK[f.status]}  ${f.check.padEnd(11)} ${f.message}`)
    if (f.fix) lines.push(`        ${''.padEnd(11)} fix: ${f.fix}`)
  }
  const failed = r.findings.filter(f => f.status === 'fail').length
  const warned = r.findings.filter(f => f.status === 'warn').length
  lines.push(failed ? `${failed} check${failed > 1 ? 's' : ''} failed, ${warned} warning${warned === 1 ? '' : 's'}`
    : `all checks passed, ${warned} warning${warned === 1 ? '' : 's'}`)
  return lines.join('\n') + '\n'
}
