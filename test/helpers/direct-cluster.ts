import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { TestCluster, type ClusterOptions, type TestT } from '../system/harness.js'
import { fillGrantKey, signGrant } from '../../lib/security/fill-grant.js'
import { chunkKey, storageId } from '../../router/cluster/keys.js'

/**
 * A cluster whose router issues fill grants (docs/fill-path.md): a shard
 * token shared by the router and the shards (the grant key comes from it),
 * each shard knowing its id. Plus what the direct-fill tests break it with:
 * shard proxies where owners were, and a proxy in front of the router that
 * rewrites the grants it hands out.
 */
export const SHARD_TOKEN = 'test-shard-token-0123456789'
export const GRANT_KEY = fillGrantKey(SHARD_TOKEN)

export async function directCluster(t: TestT, o: ClusterOptions = {}): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'reelcdn-test-grants-'))
  const file = join(dir, 'shard-token')
  writeFileSync(file, SHARD_TOKEN, { mode: 0o600 })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return TestCluster.start(t, { ...o, overrides: { 'origin.tokenFile': file, 'router.shardTokenFile': file,
    'origin.insecureOpenWrites': false, ...o.overrides } })
}

/** The owners of a title's chunk in ring order, as indexes into c.shards. */
export function ownersOf(c: TestCluster, id: string, version: string, index: number): number[] {
  return c.router.cluster.ring.owners(chunkKey(storageId(id, version), index)).map(o => Number(o.split('-')[1]) - 1)
}


export type GrantMangle = 'expire' | 'forge' | undefined

export interface RouterProxy {
  url: string
  /** fill answers passed so far */
  fills: number
  /** how the next fill answers' grants are spoiled; set per answer by `mangle(n)` (n: the answer's number from 0) */
  mangle: (n: number) => GrantMangle
  /** awaited before a request (its path and query) goes on to the router: a test holds answers back with it */
  hold: (url: string) => Promise<void> | void
  /** the path and query sent on to the router: a test plays an older router with it (one that ignores a query parameter) */
  rewrite: (url: string) => string
}

/** A proxy in front of the router that spoils the grants of fill answers as `mangle` says, and passes all else. */
export async function routerProxy(t: TestT, router: string): Promise<RouterProxy> {
  const rp: RouterProxy = { url: '', fills: 0, mangle: () => undefined, hold: () => undefined, rewrite: url => url }
  const server = http.createServer((req, res) => {
    void (async () => {
      await rp.hold(req.url ?? '')
      const up = await request(`${router}${rp.rewrite(req.url ?? '')}`, { method: req.method as 'GET', headers: req.headers })
      const fill = /\/fill\/\d+/.test(req.url ?? '') && up.statusCode === 200
      if (!fill) {
        const headers = { ...up.headers }
        delete headers['transfer-encoding']
        res.writeHead(up.statusCode, headers as http.OutgoingHttpHeaders)
        for await (const piece of up.body) res.write(piece)
        return void res.end()
      }
      const a = JSON.parse(await up.body.text()) as { sid: string; chunks: { index: number; sources: { shardId: string; grant: string }[] }[] }
      const how = rp.mangle(rp.fills++)
      for (const c of a.chunks) {
        for (const s of c.sources) {
          if (how === 'expire') s.grant = signGrant(GRANT_KEY, { sid: a.sid, index: c.index, shard: s.shardId, exp: Math.floor(Date.now() / 1000) - 5, edge: 'x' })
          if (how === 'forge') s.grant = signGrant(fillGrantKey('not the shard token'), { sid: a.sid, index: c.index, shard: s.shardId, exp: 4e9, edge: 'x' })
        }
      }
      const body = JSON.stringify(a)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
    })().catch(() => res.destroy())
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  rp.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>(r => server.close(() => r()))
  })
  return rp
}
