import type { IncomingMessage } from 'node:http'
import type { Route } from '../http/http.js'
import { peerAddress, sendJson } from '../http/http.js'
import { requireAdmin } from '../security/auth.js'
import type { Logger } from '../logger.js'
import { sendConsolePage } from './page.js'
import type { ConsoleStatus } from './status.js'

/**
 * The console's routes on a service (docs/console.md):
 *   GET /, /status     the page (public: it holds no data, lib/console/page.ts)
 *   GET /status.json   the figures it draws (admin token, as a bearer)
 * A status request without the admin token (or with a wrong one) is answered
 * 401 naming what to send, counted in
 * reelcdn_http_client_errors_total{reason="unauthorized"} like every refused
 * credential, and logged at info (a client's mistake, not the operator's).
 * With no admin token configured the figures are refused too, saying which
 * setting to set: a missing secret closes.
 */
export function consoleRoutes(o: { logger: Logger; adminToken: string | undefined; where: string; status: () => Promise<ConsoleStatus>;
  root?: boolean }): Route[] {
  const page = { GET: (_req: IncomingMessage, res: import('node:http').ServerResponse) => sendConsolePage(res) }
  return [
    ...(o.root === false ? [] : [{ path: '/', methods: page }]),
    { path: '/status', methods: page },
    { path: '/status.json', methods: { GET: async (req, res) => {
      try {
        requireAdmin(req, o.adminToken, o.where)
      } catch (err) {
        o.logger.info({ remote: peerAddress(req), reason: (err as Error).message }, 'status console refused: no or wrong admin token')
        throw err
      }
      sendJson(res, 200, await o.status(), { 'cache-control': 'no-store' })
    } } },
  ]
}
