// What failed in the last `make test`, printed last so that a log's tail names it.
//
// Theory of operation: tap keeps each test file's TAP output in .tap/test-results/<file>.tap. A CI log shows
// only its last lines, which after a failure are the run's totals; this reads the kept outputs and prints, for
// each file with a failed assertion, its `not ok` lines with their diagnostics (the YAML block under each,
// cut to a screen), then, last, one line per failed assertion with the two frames where it failed: a tail of
// twenty lines names the test and the reason. `make test` runs it only when tap failed, and exits with tap's
// failure whatever this prints.
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'

const ROOT = '.tap/test-results'
/** diagnostic lines kept under one failure */
const KEEP = 40

function files(dir: string): string[] {
  let out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out = out.concat(files(p))
    else if (e.name.endsWith('.tap')) out.push(p)
  }
  return out
}

/** each `not ok` line with the YAML block right under it (indented two more, ended by `...`): the failed
 * assertion first, then the subtests that failed because of it */
function failures(tap: string): string[][] {
  const lines = tap.split('\n')
  const found: string[][] = []
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)not ok /.exec(lines[i])
    if (!m) continue
    const block = [lines[i]]
    for (let j = i + 1; j < lines.length && lines[j].startsWith(m[1] + '  '); j++) {
      block.push(lines[j])
      if (lines[j].trim() === '...') break
    }
    found.push(block)
  }
  return found
}

let results: string[]
try {
  results = files(ROOT)
} catch (e) {
  console.log(`no test results in ${ROOT} (${(e as Error).message})`)
  process.exit(0)
}
const failed = results.map(f => ({ f, blocks: failures(readFileSync(f, 'utf8')) })).filter(x => x.blocks.length > 0)
for (const { f, blocks } of failed) {
  console.log(`\n## ${name(f)}`)
  for (const b of blocks) {
    console.log(b.slice(0, KEEP).join('\n'))
    if (b.length > KEEP) console.log(`    (${b.length - KEEP} more lines in ${f})`)
  }
}
// the last lines: one per failed assertion (a subtest's own line ends with its time), with where it failed
console.log(`\n# ${failed.length} test file(s) failed:`)
for (const { f, blocks } of failed) {
  const leaves = blocks.filter(b => !/# time=[\d.]+m?s$/.test(b[0]))
  for (const b of leaves.length > 0 ? leaves : blocks.slice(-1)) {
    const at = b.join('\n').match(/^\s*stack: \|\n((?:\s+.+\n?){1,2})/m)?.[1].trim().split('\n').map(l => l.trim()).join(' < ')
    console.log(`#   ${name(f)}: ${b[0].trim()}${at ? ` (${at})` : ''}`)
  }
}

function name(f: string): string {
  return relative(ROOT, f).replace(/\.tap$/, '')
}
