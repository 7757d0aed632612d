import { spawn } from 'node:child_process'
import { chownSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { CLI } from './spawn.js'

/**
 * A service started from the CLI that must refuse to start (issue 14, item
 * 16): it runs until it logs ready (then it is stopped) or exits, and
 * `refused` checks the refusal is one line on stderr naming the path, a
 * non-zero exit and no stack.
 *
 * Permissions mean nothing to root, so as root the services run as `nobody`
 * (uid 65534), and `own` gives it the data dirs; a read-only file or
 * directory is then read-only.
 */
export const asRoot = process.getuid?.() === 0
const NOBODY = 65534

export function own(path: string): void {
  if (!asRoot) return
  chownSync(path, NOBODY, NOBODY)
  for (const e of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, e.name)
    if (e.isDirectory()) own(p)
    else chownSync(p, NOBODY, NOBODY)
  }
}

export interface Run { code: number | null; stdout: string; stderr: string; ready: boolean }

/** Runs `reelcdn <args>` (as nobody when root) until it prints `readyMsg` (then stops it) or exits. */
export function runUntilReady(args: string[], readyMsg: string): Promise<Run> {
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

export function refused(t: Test, r: Run, path: string): void {
  t.notOk(r.ready, 'it does not start')
  t.not(r.code, 0, `a non-zero exit (${r.code})`)
  const lines = r.stderr.trim().split('\n')
  t.equal(lines.length, 1, `one line: ${r.stderr.trim()}`)
  t.ok(lines[0]!.includes(path), `naming ${path}`)
  t.notMatch(r.stderr + r.stdout, /\n\s+at /, 'no stack')
  t.notMatch(r.stdout, /"level":50/, 'no error-level log line')
}
