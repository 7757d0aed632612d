import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { requireAdmin, requireAnyBearer, requireBearer, requireBearerIfSet, tokensEqual } from './auth.js'

const req = (authorization?: string) => ({ headers: authorization === undefined ? {} : { authorization } }) as IncomingMessage

t.test('tokensEqual compares whatever the lengths', async t => {
  t.ok(tokensEqual('abc', 'abc'))
  t.notOk(tokensEqual('abc', 'abd'))
  t.notOk(tokensEqual('abc', 'abcd'))
  t.notOk(tokensEqual('', 'a'))
})

t.test('with configured secrets\' digests kept: many secrets in turn (rotations, past what is kept) each compare right, the first again after the rest', async t => {
  const wrong: number[] = []
  for (let i = 0; i < 200; i++) {
    if (!tokensEqual(`s${i}`, `s${i}`) || tokensEqual(`s${i + 1}`, `s${i}`) || tokensEqual(`s${i}`, `s${i}x`)) wrong.push(i)
    if (!requireAnyOk(`s${i}`, [`s${i}`, 's0']) || requireAnyOk(`s${i}x`, [`s${i}`, 's0'])) wrong.push(i)
  }
  t.same(wrong, [])
  t.ok(tokensEqual('s0', 's0'))
  t.notOk(tokensEqual('s1', 's0'))
})

const requireAnyOk = (given: string, tokens: string[]) => { try { requireAnyBearer(req(`Bearer ${given}`), tokens); return true } catch { return false } }

t.test('requireBearer and requireAdmin are closed without a token; only requireBearerIfSet (reads) is open', async t => {
  t.throws(() => requireBearer(req('Bearer anything'), undefined, 'writes are disabled: set REELCDN_Y'), { statusCode: 401, message: /REELCDN_Y/ })
  t.doesNotThrow(() => requireBearerIfSet(req(), undefined))
  t.throws(() => requireBearerIfSet(req('Bearer wrong'), 's3cret'), { code: 'CDN_ERR_UNAUTHORIZED' })
  t.doesNotThrow(() => requireBearerIfSet(req('Bearer s3cret'), 's3cret'))
  t.throws(() => requireAdmin(req('Bearer anything'), undefined, 'REELCDN_X_TOKEN'), { statusCode: 401, message: /REELCDN_X_TOKEN/ })
  t.doesNotThrow(() => requireAdmin(req('Bearer s3cret'), 's3cret', 'X'))
  for (const h of [undefined, 'Bearer wrong', 'Basic s3cret', 's3cret', 'Bearer s3cret-', 'bearer s3cret'])
    t.throws(() => requireAdmin(req(h), 's3cret', 'X'), { code: 'CDN_ERR_UNAUTHORIZED' }, `${h ?? 'none'} refused`)
})

t.test('requireAnyBearer accepts any configured token and skips unset ones', async t => {
  t.doesNotThrow(() => requireAnyBearer(req('Bearer read'), ['read', 'admin']))
  t.doesNotThrow(() => requireAnyBearer(req('Bearer admin'), ['read', 'admin']))
  t.doesNotThrow(() => requireAnyBearer(req('Bearer read'), ['read', undefined]))
  t.throws(() => requireAnyBearer(req('Bearer other'), ['read', 'admin']), { code: 'CDN_ERR_UNAUTHORIZED' })
  t.throws(() => requireAnyBearer(req(), ['read', undefined]), { code: 'CDN_ERR_UNAUTHORIZED' })
  t.throws(() => requireAnyBearer(req('Bearer x'), [undefined, undefined]), { code: 'CDN_ERR_UNAUTHORIZED' }, 'no token set: nobody')
})
