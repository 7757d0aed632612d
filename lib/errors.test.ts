import t from 'tap'
import { CdnError, fsFailure, toCdnError } from './errors.js'

const errno = (code: string, message: string) => Object.assign(new Error(`${code}: ${message}, write`), { code, syscall: 'write' })

t.test('a disk that fails or refuses a write is a storage error, never an unclassified one', async t => {
  for (const code of ['EIO', 'EROFS', 'EFBIG']) {
    const e = toCdnError(errno(code, 'x'))
    t.match(e, { code: 'CDN_ERR_STORAGE', statusCode: 500, source: 'storage' }, code)
    t.equal((e.cause as Error & { code: string }).code, code, `${code}: kept as the cause`)
  }
  for (const code of ['ENOSPC', 'EDQUOT']) t.match(toCdnError(errno(code, 'x')), { code: 'CDN_ERR_NO_SPACE', statusCode: 507, source: 'storage' }, code)
  t.match(toCdnError(errno('ECONNRESET', 'x')), { code: 'CDN_ERR_INTERNAL' }, 'anything else stays unclassified')
})

t.test('fsFailure names what failed in a disk errno\'s message and leaves the rest alone', async t => {
  t.equal(fsFailure(errno('EFBIG', 'file too large'), 'storing chunk a/0').message, 'storing chunk a/0: EFBIG: file too large, write')
  const mine = new CdnError('mine', { code: 'CDN_ERR_X', statusCode: 400, source: 'client' })
  t.equal(fsFailure(mine, 'storing'), mine, 'a CdnError passes through')
  t.equal(fsFailure(new Error('aborted'), 'storing').code, 'CDN_ERR_INTERNAL', 'so does a body\'s failure, as toCdnError has it')
})
