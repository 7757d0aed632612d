import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { readdir, readFile } from 'node:fs/promises'

/**
 * Child processes the bench starts, and only those. Every child is recorded
 * here by PID when spawned; `stopAll` (run from the bench's `finally` and from
 * its SIGINT/SIGTERM handler) signals each recorded PID that has not exited,
 * waits a little, then SIGKILLs what is left. Nothing is ever killed by name.
 */
export interface Child {
  name: string
  proc: ChildProcess
  pid: number
  /** resolves with the exit code (or signal) once the process has exited */
  exited: Promise<string>
  /** everything the process wrote, for error messages (bounded) */
  output(): string
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>
}

const MAX_OUTPUT = 64 * 1024

export class ProcessGroup {
  private readonly children = new Set<Child>()

  spawn(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Child {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
    if (proc.pid === undefined) {
      // spawn failures (ENOENT) are also emitted as 'error' a tick later: report them here, once
      proc.once('error', () => {})
      throw new Error(`cannot start ${name} (${cmd}): is it installed?`)
    }
    let out = ''
    const keep = (b: Buffer) => { out = (out + b.toString('utf8')).slice(-MAX_OUTPUT) }
    proc.stdout?.on('data', keep)
    proc.stderr?.on('data', keep)
    let done = false
    const exited = new Promise<string>(resolve => {
      // 'close', not 'exit': by then its output has been read to the end
      proc.once('close', (code, sig) => { done = true; resolve(sig ?? String(code)) })
      proc.once('error', err => { done = true; resolve(`error: ${err.message}`) })
    })
    const child: Child = {
      name, proc, pid: proc.pid, exited,
      output: () => out,
      stop: async (signal = 'SIGTERM', graceMs = 5000) => {
        if (!done) {
          try { process.kill(proc.pid!, signal) } catch { /* already gone */ }
          const t = setTimeout(() => { if (!done) try { process.kill(proc.pid!, 'SIGKILL') } catch { /* gone */ } }, graceMs)
          await exited
          clearTimeout(t)
        }
        this.children.delete(child)
      },
    }
    this.children.add(child)
    return child
  }

  /** Runs a command to completion; rejects with its output on a non-zero exit. */
  async run(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Promise<string> {
    const c = this.spawn(name, cmd, args, opts)
    const code = await c.exited
    this.children.delete(c)
    if (code !== '0') throw new Error(`${name} exited with ${code}:\n${c.output().slice(-4000)}`)
    return c.output()
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.children].map(c => c.stop('SIGTERM', 3000)))
  }

  /** Synchronous last resort for process exit: SIGKILL every child still recorded. */
  killAllNow(): void {
    for (const c of this.children) try { process.kill(c.pid, 'SIGKILL') } catch { /* gone */ }
  }
}

/** Resolves with the first line of the child's stdout for which `match` returns a value, or rejects on exit/timeout. */
export function waitForLine<T>(child: Child, match: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf = ''
    const onData = (b: Buffer) => {
      buf += b.toString('utf8')
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        const v = match(line)
        if (v !== undefined) { cleanup(); resolve(v); return }
      }
    }
    const timer = setTimeout(() => { cleanup(); reject(new Error(`${child.name} did not become ready within ${timeoutMs} ms:\n${child.output().slice(-4000)}`)) }, timeoutMs)
    const onExit = () => { cleanup(); reject(new Error(`${child.name} exited before it was ready:\n${child.output().slice(-4000)}`)) }
    const cleanup = () => { clearTimeout(timer); child.proc.stdout?.off('data', onData); child.proc.off('exit', onExit) }
    child.proc.stdout?.on('data', onData)
    child.proc.once('exit', onExit)
  })
}

/** A TCP port free right now on 127.0.0.1 (for servers that cannot report the port they bound). */
export async function freePort(): Promise<number> {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const port = (srv.address() as { port: number }).port
  await new Promise(r => srv.close(r))
  return port
}

/** CPU seconds (user + system) a live process has used so far, from /proc. */
export async function cpuSeconds(pid: number, ticks: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  if (!stat) return 0
  // fields after the command name, which is in parentheses and may hold spaces
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / ticks
}

/** Minor page faults a live process has taken so far (/proc/<pid>/stat minflt): fresh memory touched for the first time. */
export async function minorFaults(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  if (!stat) return 0
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7])
}

/** CPU seconds of this process's children that have exited and been reaped (cutime + cstime). */
export async function reapedChildrenCpuSeconds(ticks: number): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[13]) + Number(f[14])) / ticks
}

/** PIDs whose parent is `pid` (nginx workers under their master). */
export async function childPids(pid: number): Promise<number[]> {
  const out: number[] = []
  for (const d of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue
    const stat = await readFile(`/proc/${d}/stat`, 'utf8').catch(() => '')
    if (!stat) continue
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (ppid === pid) out.push(Number(d))
  }
  return out
}

/** The command name of a live process (from /proc/PID/comm), or undefined once it is gone. */
export async function processName(pid: number): Promise<string | undefined> {
  const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => undefined)
  return comm?.trim()
}
