import t from 'tap'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import type { Command } from 'commander'
import { program } from '../../program.js'
import { startCluster } from '../../tools/cluster.js'
import { CLI } from '../helpers/spawn.js'
import { localClusterConfig } from '../helpers/local-cluster.js'

/**
 * Issue 14, item 13: the README's commands assumed the default ports and
 * config: `ingest` had no --config, `token viewer` did not find the cluster's
 * keys, `router repair` without --config targeted the default shards. Every
 * subcommand takes --config, and `reelcdn cluster` writes its effective config
 * to <data-dir>/cluster.json, so each tool finds the router, the shards and
 * the token files of the cluster it is pointed at.
 */
function run(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  // nothing from this process's REELCDN_* environment: the config file must be enough
  // nor tap's NODE_OPTIONS (its hooks slow every start)
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REELCDN_') && k !== 'NODE_OPTIONS'))
  return new Promise(resolve => execFile('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, CLI, ...args], { cwd, env, timeout: 60_000 },
    (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr })))
}

/** Every command under `cmd` that runs something, with its path (a group such as `token` only dispatches). */
function runnable(cmd: Command, path: string[] = []): { path: string; cmd: Command }[] {
  const below = cmd.commands.flatMap(c => runnable(c, [...path, c.name()]))
  const runs = (cmd as unknown as { _actionHandler: unknown })._actionHandler !== null
  return path.length && runs ? [{ path: path.join(' '), cmd }, ...below] : below
}

t.test('every command that runs something takes --config', async t => {
  // `loadtest simulate` and `model` replay synthetic traces and read no setting at all
  const all = runnable(program()).filter(c => c.path !== 'loadtest simulate' && c.path !== 'model')
  for (const c of all) t.ok(c.cmd.options.some(o => o.long === '--config'), `${c.path} takes --config`)
  t.same(all.map(c => c.path).sort(), ['cluster', 'doctor', 'edge', 'edge report', 'ingest', 'loadtest http', 'loadtest players', 'origin', 'play', 'router',
    'router repair', 'token viewer'], 'and these are all of them')
})

t.test('after `cluster`, ingest, token viewer and router repair work with the cluster\'s config file alone', async t => {
  const dir = t.testdir()
  const data = join(dir, 'data')
  const cwd = join(dir, 'elsewhere')
  mkdirSync(cwd)
  const c = await startCluster(localClusterConfig(data), {}, { sample: false })
  t.teardown(() => c.close())
  const cfg = join(data, 'cluster.json')
  t.ok(existsSync(cfg), 'the cluster wrote its config')
  const router = c.members.find(m => m.name === 'router')!.url

  const file = join(dir, 'movie.bin')
  writeFileSync(file, randomBytes(200_000))
  const ing = await run(['ingest', file, '--id', 'movie-1', '--config', cfg], cwd)
  t.equal(ing.code, 0, `ingest: ${ing.stderr.trim().split('\n').pop()}`)
  t.match(JSON.parse(ing.stdout), { status: 'created', contentId: 'movie-1' }, 'the router at the config\'s address took it, with the config\'s token')

  const tok = await run(['token', 'viewer', 'alice', '--config', cfg], cwd)
  t.equal(tok.code, 0, `token viewer: ${tok.stderr.trim()}`)
  const play = await request(`${router}/v1/play/movie-1?viewer=${tok.stdout.trim()}`)
  t.equal(play.statusCode, 200)
  t.equal((await play.body.json() as { viewerId: string }).viewerId, 'alice', 'the router accepts the credential: the same keys')

  const rep = await run(['router', 'repair', '--config', cfg], cwd)
  t.equal(rep.code, 0, `router repair: ${rep.stderr.trim().split('\n').pop()}`)
  const report = JSON.parse(rep.stdout.slice(rep.stdout.indexOf('{\n'))) as { unreachable: string[]; chunks: { scanned: number } }
  t.same(report.unreachable, [], 'every shard of the cluster answered, with the shard token')
  t.ok(report.chunks.scanned >= 4, 'and it scanned the title\'s chunks (4 of 64 KiB, 3 copies)')
  t.same(JSON.parse(readFileSync(cfg, 'utf8')).cluster.shards.map((s: { id: string }) => s.id), ['shard-1', 'shard-2', 'shard-3'])
})
