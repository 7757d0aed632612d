import t from 'tap'
import { spawn } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { CLI } from '../helpers/spawn.js'
import { ChunkIndex } from '../../origin/chunk-index.js'
import { DiskIndex } from '../../edge/tiers/disk-index.js'
import { Trending } from '../../router/playback/trending.js'

/**
 * Issue 14, item 16: a read-only index.sqlite was found only when the scrubber
 * first wrote (a level-50 log line with a stack, after "ready"). Every service
 * checks at start that its data dir and its databases take writes, and refuses
 * to start otherwise: one line naming the path, a non-zero exit, no stack.
 *
 * Permissions mean nothing to root, so as root the services run as `nobody`
 * (uid 65534), which owns the data dirs; a read-only file is then read-only.
 */
const asRoot = process.getuid?.() === 0
const NOBODY = 65534

function own(path: string): void {
  if (!asRoot) return
  chownSync(path, NOBODY, NOBODY)
  for (const e of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, e.name)
    if (e.isDirectory()) own(p)
    else chownSync(p, NOBODY, NOBODY)
  }
}

interface Run { code: number | null; stdout: string; stderr: string; ready: boolean }

/** Runs `reelcdn <args>` (as nobody when root) until it prints `readyMsg` (then stops it) or exits. */
function runUntilReady(args: string[], readyMsg: string): Promise<Run> {
  // no REELCDN_* settings, and without tap's NODE_OPTIONS: its hooks would write under ./.tap, which nobody may not
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' }
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, CLI, ...args],
    { env, stdio: ['ignore', 'pipe', 'pipe'], ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}) })
  let stdout = ''
  let stderr = ''
  let ready = false
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  child.stdout.on('data', d => {
    stdout += d
    if (!ready && stdout.includes(`"msg":"${readyMsg}"`)) { ready = true; child.kill('SIGTERM') }
  })
  child.stderr.on('data', d => { stderr += d })
  return new Promise(resolve => child.on('close', code => { clearTimeout(timer); resolve({ code, stdout, stderr, ready }) }))
}

interface Service { name: string; args: (dir: string) => string[]; ready: string; db: string; create(file: string): void }

const services: Service[] = [
  { name: 'origin', args: d => ['origin', '--port', '0', '--data-dir', d, '--reserve', '0'], ready: 'origin shard ready',
    db: 'index.sqlite', create: f => new ChunkIndex(f).close() },
  { name: 'edge', args: d => ['edge', '--port', '0', '--data-dir', d, '--upstream', 'http://127.0.0.1:9', '--prefill-window', 'never'], ready: 'edge ready',
    db: 'index.sqlite', create: f => new DiskIndex(f).close() },
  { name: 'router', args: d => ['router', '--port', '0', '--data-dir', d, '--repair-interval', '0'], ready: 'router ready',
    db: 'trending.sqlite', create: f => new Trending(f, 'router-test').close(Date.now()) },
]

function refused(t: Test, r: Run, path: string): void {
  t.notOk(r.ready, 'it does not start')
  t.not(r.code, 0, `a non-zero exit (${r.code})`)
  const lines = r.stderr.trim().split('\n')
  t.equal(lines.length, 1, `one line: ${r.stderr.trim()}`)
  t.ok(lines[0]!.includes(path), `naming ${path}`)
  t.notMatch(r.stderr + r.stdout, /\n\s+at /, 'no stack')
  t.notMatch(r.stdout, /"level":50/, 'no error-level log line')
}

function dataDir(t: Test): string {
  const dir = join(t.testdir(), 'data')
  mkdirSync(dir)
  return dir
}

for (const s of services) {
  t.test(`${s.name}: a read-only ${s.db} stops the start`, async t => {
    const dir = dataDir(t)
    s.create(join(dir, s.db))
    own(dir)
    chmodSync(join(dir, s.db), 0o444)
    refused(t, await runUntilReady(s.args(dir), s.ready), join(dir, s.db))
  })

  t.test(`${s.name}: a read-only data dir stops the start`, async t => {
    const dir = dataDir(t)
    own(dir)
    chmodSync(dir, 0o555)
    try {
      refused(t, await runUntilReady(s.args(dir), s.ready), dir)
    } finally {
      chmodSync(dir, 0o755)
    }
  })
}
