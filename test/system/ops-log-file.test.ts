import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { CLI } from '../helpers/spawn.js'
import { until } from '../helpers/origin.js'

/**
 * Logs under logrotate (docs/install.md, "Logs"): a service started with
 * --log-file writes its JSON lines there; after the file is renamed, SIGUSR1
 * makes it open a new one by the same name, and the service goes on serving.
 * SIGUSR1 must not open Node's inspector, which it does when nothing listens.
 */
/** without tap's NODE_OPTIONS (its hooks slow every start) */
const childEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS'))

/** a start on a loaded machine (other test files run beside this one) can take more than until's 10 s */
const START_MS = 60_000

/** its exit code once its stdout and stderr are read to the end */
const closed = (child: ReturnType<typeof spawn>) => new Promise<number | null>(resolve => child.once('close', code => resolve(code)))

const lines = (file: string) => existsSync(file)
  ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l) as Record<string, unknown>)
  : []

t.test('SIGUSR1 reopens the log file after logrotate renamed it, and opens no debugger', async t => {
  const dir = t.testdir()
  const file = join(dir, 'origin.log')
  const child = spawn(process.execPath, [CLI, 'origin', '--port', '0', '--data-dir', join(dir, 'data'), '--reserve', '0',
    '--scrub-rate', '0', '--insecure-open-writes', '--log-requests', '--log-file', file], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = '', stderr = ''
  child.stdout.on('data', d => { stdout += d })
  child.stderr.on('data', d => { stderr += d })

  await until(() => lines(file).some(l => l.msg === 'origin shard ready'), 'the ready line in the log file', START_MS)
  const url = lines(file).find(l => l.msg === 'origin shard ready')!.url as string
  renameSync(file, `${file}.1`)
  child.kill('SIGUSR1')
  await until(() => lines(file).some(l => l.msg === 'log file reopened'), 'the new file', START_MS)

  const res = await request(`${url}/v1/chunks/nothing/0`, { headers: { 'x-request-id': 'after-rotate' } })
  await res.body.dump()
  t.equal(res.statusCode, 404, 'the service still answers')
  await until(() => lines(file).some(l => l.reqId === 'after-rotate'), 'the request line', START_MS)
  t.match(lines(file).find(l => l.reqId === 'after-rotate'), { service: 'origin', msg: 'request', method: 'GET', url: '/v1/chunks/nothing/0', status: 404, remote: '127.0.0.1' })
  t.ok(lines(`${file}.1`).some(l => l.msg === 'origin shard ready'), 'the rotated file keeps the lines before the signal')
  t.notOk(lines(`${file}.1`).some(l => l.reqId === 'after-rotate'), 'and none after it')
  t.equal(stdout, '', 'nothing on stdout')
  t.notMatch(stderr, /Debugger listening/, 'SIGUSR1 opened no inspector')

  child.kill('SIGTERM')
  t.equal(await closed(child), 0, 'a clean stop')
})

t.test('a service without a log file logs to stdout, and SIGUSR1 leaves it running with no debugger', async t => {
  const dir = t.testdir()
  const child = spawn(process.execPath, [CLI, 'origin', '--port', '0', '--data-dir', join(dir, 'data'), '--reserve', '0',
    '--scrub-rate', '0', '--insecure-open-writes'], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = '', stderr = ''
  child.stdout.on('data', d => { stdout += d })
  child.stderr.on('data', d => { stderr += d })
  await until(() => /origin shard ready/.test(stdout), 'the ready line on stdout', START_MS)
  const url = (JSON.parse(stdout.split('\n').find(l => l.includes('origin shard ready'))!) as { url: string }).url
  child.kill('SIGUSR1')
  // a request answered after the signal was sent: the signal was delivered before it (one process, one event loop)
  const res = await request(`${url}/readyz`)
  await res.body.dump()
  t.equal(res.statusCode, 200, 'still serving after SIGUSR1')
  child.kill('SIGTERM')
  t.equal(await closed(child), 0)
  t.notMatch(stderr, /Debugger listening/, 'no inspector opened')
})
