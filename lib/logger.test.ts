import t from 'tap'
import { existsSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { reopenLogFiles, serviceLogger } from './logger.js'
import { until } from '../test/helpers/origin.js'

/**
 * log.file: the JSON lines go to the file, and a rename followed by a reopen
 * (what logrotate and SIGUSR1 do) sends the next lines to a new file by the
 * same name, none lost. The signal itself is tested on a running service in
 * test/system/ops-log-file.test.ts.
 */
const lines = (file: string) => existsSync(file)
  ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l) as Record<string, unknown>)
  : []

t.test('a renamed log file is followed by a new one after the reopen', async t => {
  const dir = t.testdir()
  const file = join(dir, 'svc.log')
  const log = serviceLogger('svc', { level: 'info', file })
  log.info({ n: 1 }, 'before')
  await until(() => lines(file).some(l => l.n === 1), 'the first line in the file')
  renameSync(file, `${file}.1`)
  log.info({ n: 2 }, 'between')
  reopenLogFiles()
  log.info({ n: 3 }, 'after')
  await until(() => lines(file).some(l => l.n === 3), 'the line after the reopen in the new file')
  const old = lines(`${file}.1`), now = lines(file)
  t.same(old[0]?.n, 1, 'the renamed file keeps what was written before the rename')
  // a line still buffered at the reopen goes to the new file: either way it is written once, in order
  t.same([...old, ...now].filter(l => l.n !== undefined).map(l => l.n), [1, 2, 3], 'no line lost or doubled')
  t.match(now.find(l => l.msg === 'log file reopened'), { service: 'log', file }, 'the new file says it was reopened')
  t.match(now.find(l => l.n === 3), { service: 'svc', pid: process.pid, level: 30, msg: 'after' }, 'the same JSON lines as on stdout')
})

t.test('a log file the service cannot open fails its start, naming log.file', async t => {
  // a missing directory: what even root cannot open (the service does not create directories for its log)
  const file = join(t.testdir(), 'missing', 'svc.log')
  t.throws(() => serviceLogger('svc', { level: 'info', file }), { code: 'CDN_ERR_CONFIG', message: /^cannot open log.file .*missing\/svc.log: ENOENT/ })
})
