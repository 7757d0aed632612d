import http from 'node:http'
import { readFileSync } from 'node:fs'

/**
 * `node dist/bench/lib/bare-server.js SEED_FILE SIZE CHUNK_SIZE`: the floor a
 * Node server can reach on the edge row's hit workload, run as its own process
 * next to the edge. It holds the bench title in memory as one Buffer per chunk
 * (the title's 1 MiB seed blocks stamped with their number, as TitleData makes
 * them) and answers `GET` with a single `Range: bytes=a-b` as a 206: one
 * writeHead, `subarray`s of the chunk Buffers, no logging, no metrics, no
 * conditionals. Whatever the edge spends above it on RAM hits is the edge's
 * own per-request work.
 */
const BLOCK = 1024 * 1024
const [seedFile, sizeArg, chunkArg] = process.argv.slice(2)
const size = Number(sizeArg)
const chunkSize = Number(chunkArg)
if (!seedFile || !Number.isInteger(size) || !Number.isInteger(chunkSize) || size % chunkSize !== 0 || chunkSize % BLOCK !== 0) {
  process.stderr.write('usage: bare-server.js SEED_FILE SIZE CHUNK_SIZE (sizes in bytes, multiples of 1 MiB)\n')
  process.exit(2)
}
const seed = readFileSync(seedFile)
const chunks: Buffer[] = []
for (let c = 0; c < size / chunkSize; c++) {
  const buf = Buffer.allocUnsafeSlow(chunkSize)
  for (let b = 0; b < chunkSize / BLOCK; b++) {
    seed.copy(buf, b * BLOCK)
    buf.writeUInt32BE(c * (chunkSize / BLOCK) + b, b * BLOCK)
  }
  chunks.push(buf)
}
const RANGE = /^bytes=(\d+)-(\d+)$/

const server = http.createServer({ noDelay: true }, (req, res) => {
  const m = RANGE.exec(req.headers.range ?? '')
  const start = m ? Number(m[1]) : 0
  const end = m ? Math.min(Number(m[2]), size - 1) : size - 1
  if (start > end) {
    res.writeHead(416, { 'content-range': `bytes */${size}` })
    return void res.end()
  }
  res.writeHead(m ? 206 : 200, {
    'content-type': 'video/mp4', 'content-length': end - start + 1, 'accept-ranges': 'bytes',
    ...(m ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
  })
  const first = Math.floor(start / chunkSize)
  const last = Math.floor(end / chunkSize)
  for (let i = first; i <= last; i++) {
    const from = Math.max(start, i * chunkSize) - i * chunkSize
    const to = Math.min(end, (i + 1) * chunkSize - 1) - i * chunkSize
    const piece = chunks[i]!.subarray(from, to + 1)
    if (i === last) res.end(piece)
    else res.write(piece)
  }
})
server.listen(0, '127.0.0.1', () => {
  const a = server.address() as import('node:net').AddressInfo
  process.stdout.write(`${JSON.stringify({ msg: 'bare server ready', url: `http://127.0.0.1:${a.port}` })}\n`)
})
process.once('SIGTERM', () => { server.close(); server.closeAllConnections() })
setInterval(() => {}, 1 << 30).unref()
