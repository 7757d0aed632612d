import { readFileSync } from 'node:fs'

/**
 * `node dist/bench/profile-top.js FILE.cpuprofile [N]`: the top N functions of
 * a V8 CPU profile (from `--node-args "--cpu-prof --cpu-prof-dir=DIR"` on the
 * bench) by self and by inclusive time, as shares of the whole profile.
 *
 * @NOTE the profiler samples on a wall-clock timer: on a machine shared with
 * other work, a thread that is descheduled inside a syscall (writev, read)
 * keeps collecting samples there, so syscalls look bigger than their CPU cost.
 */
interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[] }

const [file, n = '30'] = process.argv.slice(2)
if (!file) {
  process.stderr.write('usage: node dist/bench/profile-top.js FILE.cpuprofile [N]\n')
  process.exit(2)
}
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(p.nodes.map(x => [x.id, x]))
const parent = new Map<number, number>()
for (const x of p.nodes) for (const c of x.children ?? []) parent.set(c, x.id)
const name = (x: Node) => `${x.callFrame.functionName || '(anonymous)'} ${x.callFrame.url.split('/').slice(-2).join('/')}:${x.callFrame.lineNumber + 1}`

const timeOf = new Map<number, number>()
let total = 0
p.samples.forEach((id, i) => {
  const dt = p.timeDeltas[i] ?? 0
  timeOf.set(id, (timeOf.get(id) ?? 0) + dt)
  total += dt
})
const self = new Map<string, number>()
const incl = new Map<string, number>()
for (const [id, t] of timeOf) {
  const key = name(byId.get(id)!)
  self.set(key, (self.get(key) ?? 0) + t)
  const seen = new Set<string>()
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const k = name(byId.get(cur)!)
    if (seen.has(k)) continue // recursion counts once
    seen.add(k)
    incl.set(k, (incl.get(k) ?? 0) + t)
  }
}
const top = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, Number(n))
  .map(([k, t]) => `${(100 * t / total).toFixed(1).padStart(5)}%  ${k}`).join('\n')
process.stdout.write(`${file}: ${(total / 1e6).toFixed(1)} s sampled\n-- self\n${top(self)}\n-- inclusive\n${top(incl)}\n`)
