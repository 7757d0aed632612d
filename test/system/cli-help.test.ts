import t from 'tap'
import { execFile } from 'node:child_process'
import { CLI } from '../helpers/spawn.js'

/**
 * `--help` of every subcommand lists every option with its default and unit
 * (issue 2). The commands are found by walking `reelcdn --help`, so a new
 * subcommand is checked without touching this file.
 */
interface OptionLine { flags: string; description: string }

function help(path: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [CLI, ...path, '--help'], { timeout: 20_000, env: { ...process.env, COLUMNS: '80' } },
      (err, out, stderr) => (err ? reject(new Error(`${path.join(' ')} --help: ${err.message} ${stderr}`)) : resolve(out))))
}

/** The entries of one section (`Options:`, `Commands:`): first column and description, wrapped lines joined. */
function section(text: string, name: string): OptionLine[] {
  const lines = text.split('\n')
  const start = lines.indexOf(`${name}:`)
  if (start < 0) return []
  const out: OptionLine[] = []
  for (const l of lines.slice(start + 1)) {
    if (!l.startsWith(' ')) break
    const m = /^ {2}(\S.*?)(?: {2,}(.*))?$/.exec(l)
    if (m) out.push({ flags: m[1]!, description: m[2] ?? '' })
    else out[out.length - 1]!.description += ' ' + l.trim()
  }
  return out
}

/** Every command path under `reelcdn`, depth first. */
async function commands(path: string[] = []): Promise<{ path: string[]; text: string }[]> {
  const text = await help(path)
  const out = path.length ? [{ path, text }] : []
  for (const c of section(text, 'Commands')) {
    const name = c.flags.split(' ')[0]!
    if (name === 'help') continue
    out.push(...await commands([...path, name]))
  }
  return out
}

/** Placeholders that name a unit: a bare number as their default would leave the unit out (`<s>` is also Zipf's s). */
const UNIT_PLACEHOLDERS = /<(ms|MBps|bytes)>|--duration <s>/

t.test('every option that takes a value shows its default (with its unit) or says it is required', async t => {
  const all = await commands()
  const names = all.map(c => c.path.join(' '))
  // the services and tools cli.ts registers, and their own subcommands
  for (const want of ['origin', 'router', 'router repair', 'edge', 'edge report', 'ingest', 'cluster', 'loadtest http',
    'loadtest players', 'loadtest simulate', 'token viewer', 'play']) t.ok(names.includes(want), `${want} is checked`)

  let checked = 0
  for (const { path, text } of all) {
    for (const o of section(text, 'Options')) {
      if (!/[<[]/.test(o.flags)) continue
      checked++
      const where = `${path.join(' ')} ${o.flags}`
      const dflt = /\(default: ([^)]*)\)/.exec(o.description)?.[1]
      const required = /\brequired\b/i.test(o.description)
      t.ok(dflt !== undefined || required, `${where}: shows a default or says it is required`)
      if (dflt !== undefined && UNIT_PLACEHOLDERS.test(o.flags)) {
        const value = dflt.split(';')[0]!.trim()
        t.notMatch(value, /^-?[0-9.]+$/, `${where}: its default (${value}) has a unit`)
      }
    }
  }
  t.ok(checked > 50, `${checked} options checked`)
})

t.test('the parser finds what a missing default looks like', async t => {
  // a guard on the test itself: the check above must be able to fail
  const text = 'Options:\n  --id <x>       an id\n  --rate <MBps>  a rate (default: 5; env X)\n  --n <n>        a count\n                 (default: 3)\n'
  const opts = section(text, 'Options')
  t.same(opts.map(o => o.flags), ['--id <x>', '--rate <MBps>', '--n <n>'])
  t.notMatch(opts[0]!.description, /\(default: /)
  t.match(opts[1]!.description, /\(default: 5; env X\)/)
  t.match(opts[2]!.description, /a count \(default: 3\)/)
})
