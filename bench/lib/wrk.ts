import { writeFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ProcessGroup, childPids, cpuSeconds, reapedChildrenCpuSeconds } from './proc.js'

/**
 * wrk as the load generator. One Lua script drives every server: it asks for
 * `prefix + <chunk>` with a random chunk number, and either a `Range` of `len`
 * bytes at a random offset or (len = 0) the whole chunk. In title mode (the
 * edge and nginx proxy_cache serve a title at one URL) `prefix` is that URL,
 * ranges fall anywhere in the first `chunks` chunks (across chunk boundaries
 * too), and a whole chunk is the aligned range of that chunk. In walk mode
 * (the tail row's viewers) each request is the next `len` bytes of a viewer
 * walking the title in order from its own start offset, wrapping at the end;
 * see VIEWERS below. With PACE, each connection waits about that long after
 * a response before its next request (wrk's `delay` hook, drawn from 0.5-1.5
 * times it so the connections do not stay in step), which offers every
 * server about the same load instead of as much as it answers. Its `done` hook
 * prints one JSON line, so nothing is scraped from wrk's human output.
 *
 * @NOTE wrk's Lua has no connection identity (request() is called per thread
 * whenever one of its connections is ready to send), so a thread keeps as many
 * viewers as it has connections in a ring and each request takes the next one.
 * The server sees what 200 players would send (every viewer advances by one
 * range per request, all viewers advance at the same pace); a given viewer's
 * ranges may arrive on different connections of the thread, which a RAM hit
 * does not care about. No response() hook: defining one makes wrk copy every
 * body into Lua.
 *
 * Around each run we also read CPU time from /proc: the wrk process's own
 * (from our reaped-children counters, exact), the server's (its PIDs), and the
 * whole machine's, so a report can show when the generator, not the server,
 * was the limit, and how much of the machine other work took meanwhile.
 */
const SCRIPT = `
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local prefix, chunks, size, len, title, walk
local viewers, nextViewer = {}, 1
function init(args)
  prefix = args[1]
  chunks = tonumber(args[2])
  size = tonumber(args[3])
  len = tonumber(args[4])
  title = args[5] == "title" or args[5] == "walk"
  walk = args[5] == "walk"
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  if walk then
    -- VIEWERS: this thread's share of the connections, each starting at its own random range
    local n = tonumber(args[6])
    local ranges = math.floor(chunks * size / len)
    for i = 1, n do viewers[i] = math.random(0, ranges - 1) * len end
  end
  -- PACE: a connection waits about this many ms after each response before its next request (wrk's delay hook),
  -- drawn from 0.5-1.5 times it: a fixed wait keeps the connections in step, and every server then drains bursts
  -- of all of them at once
  local pace = tonumber(args[7] or "0")
  if pace > 0 then delay = function() return math.floor(pace * (0.5 + math.random())) end end
end

function request()
  if walk then
    local v = nextViewer
    nextViewer = nextViewer % #viewers + 1
    local start = viewers[v]
    local total = chunks * size
    viewers[v] = (start + len) % (total - total % len)
    return wrk.format("GET", prefix, { Range = "bytes=" .. start .. "-" .. (start + len - 1) })
  end
  local c = math.random(0, chunks - 1)
  if title then
    -- one URL for the whole title; chunk c is the byte range [c * size, (c + 1) * size)
    if len == 0 then
      return wrk.format("GET", prefix, { Range = "bytes=" .. (c * size) .. "-" .. ((c + 1) * size - 1) })
    end
    local start = math.random(0, chunks * size - len)
    return wrk.format("GET", prefix, { Range = "bytes=" .. start .. "-" .. (start + len - 1) })
  end
  if len == 0 then
    return wrk.format("GET", prefix .. c)
  end
  local start = math.random(0, size - len)
  return wrk.format("GET", prefix .. c, { Range = "bytes=" .. start .. "-" .. (start + len - 1) })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%.0f,"bytes":%.0f,"durationUs":%.0f,' ..
    '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
    '"latencyUs":{"mean":%.1f,"p50":%.0f,"p90":%.0f,"p99":%.0f,"max":%.0f}}\\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

-- headers given with -H (WrkLoad.headers, in wrk.headers) also go on requests that bring their own table (Range)
local format = wrk.format
wrk.format = function(method, path, headers, body)
  if headers then for k, v in pairs(wrk.headers) do if headers[k] == nil then headers[k] = v end end end
  return format(method, path, headers, body)
end
`

export interface WrkLoad {
  /** base URL of the server, e.g. http://127.0.0.1:7101 */
  url: string
  /** path before the chunk number, e.g. /v1/chunks/bench/ */
  prefix: string
  chunks: number
  chunkSize: number
  /** bytes per range request; 0 = whole chunks */
  rangeBytes: number
  connections: number
  threads: number
  seconds: number
  timeoutSeconds: number
  /** `prefix` is one title's URL; chunk c is its bytes [c * chunkSize, (c + 1) * chunkSize) */
  title?: boolean
  /** sent on every request, e.g. a shard's Authorization */
  headers?: Record<string, string>
  /** (with `title`) each connection is a viewer reading the title in order, `rangeBytes` per request */
  walk?: boolean
  /**
   * ms each connection waits after a response before its next request (0: none, as fast as the server
   * answers): an offered load the same for every server, so latencies compare at equal load
   */
  paceMs?: number
}

export interface CpuShare {
  /** CPU used over the run, in cores (1.0 = one core busy the whole time) */
  client: number
  server: number
  /** everything on the machine that was neither: other work sharing it, and the bench itself */
  other: number
  /** whole machine busy, in cores */
  machine: number
}

export interface WrkResult {
  requests: number
  bytes: number
  seconds: number
  reqPerSec: number
  /** 10^6 bytes per second, from the bytes wrk received (headers included) */
  MBps: number
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number }
  errors: { connect: number; read: number; write: number; status: number; timeout: number }
  cpu: CpuShare
}

async function machineTicks(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
  const idle = v[3]! + v[4]!
  return { busy: total - idle, total }
}

export class Wrk {
  private scriptPath: string

  constructor(private readonly procs: ProcessGroup, private readonly bin: string, dir: string, private readonly ticks: number) {
    this.scriptPath = join(dir, 'bench.lua')
  }

  async init(): Promise<void> {
    await writeFile(this.scriptPath, SCRIPT)
  }

  /**
   * Runs one load against a server whose CPU is measured through `serverPid`
   * (and its child processes, for nginx's workers), plus `alsoPids` (the
   * shards behind a router: their work is part of what a read costs).
   */
  async run(load: WrkLoad, serverPid: number, alsoPids: number[] = []): Promise<WrkResult> {
    const pids = [serverPid, ...(await childPids(serverPid)), ...alsoPids]
    const serverCpu = async () => (await Promise.all(pids.map(p => cpuSeconds(p, this.ticks)))).reduce((a, b) => a + b, 0)
    const c0 = await reapedChildrenCpuSeconds(this.ticks)
    const s0 = await serverCpu()
    const m0 = await machineTicks()
    const t0 = process.hrtime.bigint()
    const out = await this.procs.run('wrk', this.bin, [
      '-t', String(load.threads), '-c', String(load.connections), '-d', `${load.seconds}s`,
      '--timeout', `${load.timeoutSeconds}s`, '-s', this.scriptPath,
      ...Object.entries(load.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), load.url,
      '--', load.prefix, String(load.chunks), String(load.chunkSize), String(load.rangeBytes),
      load.walk ? 'walk' : load.title ? 'title' : 'chunks',
      // viewers per wrk thread (wrk gives each thread connections / threads connections)
      String(Math.max(1, Math.floor(load.connections / load.threads))),
      String(Math.round(load.paceMs ?? 0)),
    ])
    const wall = Number(process.hrtime.bigint() - t0) / 1e9
    const m1 = await machineTicks()
    const s1 = await serverCpu()
    const c1 = await reapedChildrenCpuSeconds(this.ticks)
    const line = out.split('\n').find(l => l.startsWith('WRKJSON '))
    if (!line) throw new Error(`wrk printed no summary:\n${out.slice(-2000)}`)
    const j = JSON.parse(line.slice(8)) as {
      requests: number; bytes: number; durationUs: number; errors: WrkResult['errors']
      latencyUs: { mean: number; p50: number; p90: number; p99: number; max: number }
    }
    const seconds = j.durationUs / 1e6
    const machine = (m1.busy - m0.busy) / this.ticks / wall
    const client = (c1 - c0) / wall
    const server = (s1 - s0) / wall
    const ms = (us: number) => Math.round(us / 10) / 100
    return {
      requests: j.requests,
      bytes: j.bytes,
      seconds,
      reqPerSec: j.requests / seconds,
      MBps: j.bytes / seconds / 1e6,
      latencyMs: { mean: ms(j.latencyUs.mean), p50: ms(j.latencyUs.p50), p90: ms(j.latencyUs.p90), p99: ms(j.latencyUs.p99), max: ms(j.latencyUs.max) },
      errors: j.errors,
      cpu: { client, server, other: Math.max(0, machine - client - server), machine },
    }
  }
}
