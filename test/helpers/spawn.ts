import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

/** dist/cli.js, the same entry point users run. */
export const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url))

export interface Spawned {
  child: ChildProcess
  /** the first JSON log line whose msg matches */
  line: Record<string, unknown>
  /** every JSON line the child has written to stdout so far, and on until it exits */
  lines: Record<string, unknown>[]
}

/**
 * Starts `reelcdn <args>` as a child process and resolves with the first JSON
 * log line whose `msg` is `readyMsg`. The child is killed (by its PID, SIGKILL)
 * at teardown if it is still running.
 */
export function spawnCli(t: Test, args: string[], readyMsg: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 20000): Promise<Spawned> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr!.on('data', d => { stderr += d })
  const lines: Record<string, unknown>[] = []
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} not ready after ${timeoutMs} ms: ${stderr}`)), timeoutMs)
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`${args[0]} exited with ${code}: ${stderr}`)) })
    createInterface({ input: child.stdout! }).on('line', l => {
      try {
        const j = JSON.parse(l) as Record<string, unknown>
        lines.push(j)
        if (j.msg === readyMsg) { clearTimeout(timer); child.removeAllListeners('exit'); resolve({ child, line: j, lines }) }
      } catch { /* not JSON */ }
    })
  })
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise(resolve => child.once('exit', code => resolve(code)))
}

/** Runs the CLI to its end: its exit code (0, or the failure's), stdout and stderr. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }))
  })
}
