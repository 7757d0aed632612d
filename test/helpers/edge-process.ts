import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { HasTeardown } from './upstream.js'

/**
 * `reelcdn edge` as a child process (node dist/cli.js edge), for tests that
 * must kill it for real. Resolves once it logs 'edge ready', with its URL.
 * Killed by PID at teardown if still running.
 */
export interface EdgeProcess {
  url: string
  child: ChildProcess
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const cli = fileURLToPath(new URL('../../cli.js', import.meta.url))

export async function spawnEdge(t: HasTeardown, args: string[], env: NodeJS.ProcessEnv = {}): Promise<EdgeProcess> {
  const child = spawn(process.execPath, [cli, 'edge', '--port', '0', '--log-level', 'info', ...args], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(resolve =>
    child.once('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  let stderr = ''
  child.stderr!.on('data', d => { stderr += String(d) })
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', line => {
      try {
        const rec = JSON.parse(line) as { msg?: string; url?: string }
        if (rec.msg === 'edge ready' && rec.url) resolve(rec.url)
      } catch { /* not a log line */ }
    })
    void exited.then(e => reject(new Error(`edge exited (${e.code ?? e.signal}) before it was ready: ${stderr}`)))
  })
  return { url, child, exited }
}

/** A process's JSON log lines as they come, and a barrier on the next one whose msg starts with a prefix. */
export interface LogWatch<L> {
  lines: L[]
  next(msg: string): Promise<L>
}

export function watchLog<L extends { msg?: string }>(child: ChildProcess): LogWatch<L> {
  const lines: L[] = []
  const waiting: { msg: string; resolve: (l: L) => void }[] = []
  createInterface({ input: child.stdout! }).on('line', raw => {
    let l: L
    try { l = JSON.parse(raw) as L } catch { return }
    lines.push(l)
    for (const w of waiting.filter(w => l.msg?.startsWith(w.msg))) { waiting.splice(waiting.indexOf(w), 1); w.resolve(l) }
  })
  return { lines, next: msg => new Promise(resolve => waiting.push({ msg, resolve })) }
}
