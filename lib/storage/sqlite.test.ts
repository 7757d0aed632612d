import t from 'tap'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { openDatabase } from './sqlite.js'
import { StorageError } from '../errors.js'

const V1 = 'CREATE TABLE a (x INTEGER NOT NULL)'
const V2 = 'CREATE TABLE b (y TEXT NOT NULL)'
const version = (db: ReturnType<typeof openDatabase>) => db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").get()?.value
const failure = (fn: () => unknown): Error | undefined => {
  try {
    fn()
  } catch (err) {
    return err as Error
  }
  return undefined
}
const tables = (db: ReturnType<typeof openDatabase>) => db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map(r => r.name)

t.test('migrations run once each, in order, and a reopen resumes where the file is', async t => {
  const file = join(t.testdir(), 'x.sqlite')
  const a = openDatabase(file, 'the test store', [V1])
  t.equal(version(a), '1')
  a.prepare('INSERT INTO a (x) VALUES (7)').run()
  t.equal(a.pragma('journal_mode', { simple: true }), 'wal')
  a.close()
  const b = openDatabase(file, 'the test store', [V1, V2]) // V1 would fail if it ran again: table a exists
  t.equal(version(b), '2')
  t.same(tables(b), ['a', 'b', 'meta'])
  t.equal(b.prepare<[], { x: number }>('SELECT x FROM a').get()?.x, 7, 'data kept across the migration')
  b.close()
})

t.test('a file from a newer build is refused, naming the store and the file', async t => {
  const file = join(t.testdir(), 'x.sqlite')
  openDatabase(file, 'the test store', [V1, V2]).close()
  const err = failure(() => openDatabase(file, 'the test store', [V1]))
  t.ok(err instanceof StorageError)
  t.match(err?.message, /cannot open the test store .*x\.sqlite: schema version 2 is newer than this build's 1/)
})

t.test('a failing migration leaves the file at the version before it', async t => {
  const file = join(t.testdir(), 'x.sqlite')
  openDatabase(file, 'the test store', [V1]).close()
  t.ok(failure(() => openDatabase(file, 'the test store', [V1, 'CREATE TABLE b (y TEXT); CREATE TABLE a (z TEXT)'])) instanceof StorageError)
  const db = openDatabase(file, 'the test store', [V1])
  t.equal(version(db), '1')
  t.same(tables(db), ['a', 'meta'], 'the half of the failed migration was rolled back')
  db.close()
})

t.test('a file that is not SQLite is a StorageError, not a crash', async t => {
  const file = join(t.testdir(), 'x.sqlite')
  writeFileSync(file, 'not a database, just text that is long enough to have a header '.repeat(10))
  const err = failure(() => openDatabase(file, 'the test store', [V1]))
  t.ok(err instanceof StorageError)
  t.match(err?.message, /cannot open the test store/)
})
