import { Command } from 'commander'
import { originCommand } from './origin/main.js'
import { edgeCommand } from './edge/main.js'
import { routerCommand } from './router/main.js'
import { ingestCommand } from './router/ingest/ingest-cli.js'
import { clusterCommand } from './tools/cluster.js'
import { loadtestCommand } from './tools/loadtest/main.js'
import { modelCommand } from './tools/model/main.js'
import { playCommand } from './tools/play.js'
import { tokenCommand } from './tools/token.js'
import { doctorCommand } from './tools/doctor/main.js'

/** `reelcdn` and every subcommand, unparsed: cli.ts runs it, tests walk it. */
export function program(): Command {
  const program = new Command('reelcdn')
    .description('reelcdn: a self-hosted CDN for video.\nEach subcommand runs one service or tool; `reelcdn help <command>` shows its options.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortOptions: false })
    // options belong to the command they follow: `router repair -c f` configures repair, not router
    .enablePositionalOptions()

  program.addCommand(originCommand())
  program.addCommand(edgeCommand())
  program.addCommand(routerCommand())
  program.addCommand(ingestCommand())
  program.addCommand(clusterCommand())
  program.addCommand(loadtestCommand())
  program.addCommand(modelCommand())
  program.addCommand(playCommand())
  program.addCommand(tokenCommand())
  program.addCommand(doctorCommand())
  return program
}
