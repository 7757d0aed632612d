// What failed in the last `make test`, printed last so that a log's tail names it.
//
// Theory of operation: tap keeps each test file's TAP output in .tap/test-results/<file>.tap, and `make test`
// tees tap's own output to .tap/run.tap (the argument). A CI log shows only its last lines, which after a
// failure are the run's totals; this takes the files tap's output says failed (a file that crashed or only
// set an exit code among them), prints each one's `not ok` lines with their diagnostics (the YAML block under
// each, cut to a screen), then, last, one line per failed assertion with the two frames where it failed, or
// how the file ended when none failed: a tail of twenty lines names the test and the reason. `make test`
// clears the kept outputs first (tap never does, so a file renamed since would be reported), runs this only
// when tap failed, and exits with tap's failure whatever this prints.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
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

// tap's own output (`make test` tees it here) names every file that failed at its top level, one that crashed
// or only set an exit code included, whose kept output may hold no failed assertion; without it, every kept output
const runLog = process.argv[2]
const run = runLog !== undefined && existsSync(runLog) ? readFileSync(runLog, 'utf8') : undefined
const top = run === undefined ? [] : failures(run).filter(b => /^not ok \d+ - \S/.test(b[0]))
let names: string[]
if (run !== undefined) names = top.map(b => /^not ok \d+ - (\S+)/.exec(b[0])![1])
else {
  try {
    names = files(ROOT).map(name)
  } catch (e) {
    console.log(`no test results in ${ROOT} (${(e as Error).message})`)
    process.exit(0)
  }
}
const failed = names
  .map(f => {
    const kept = join(ROOT, `${f}.tap`)
    return { f, blocks: existsSync(kept) ? failures(readFileSync(kept, 'utf8')) : [], top: top.find(b => b[0].includes(` - ${f}`)) }
  })
  .filter(x => x.blocks.length > 0 || x.top !== undefined)
for (const { f, blocks, top } of failed) {
  console.log(`\n## ${f}`)
  for (const b of top && blocks.length === 0 ? [top] : blocks) {
    console.log(b.slice(0, KEEP).join('\n'))
    if (b.length > KEEP) console.log(`    (${b.length - KEEP} more lines)`)
  }
}
// the last lines: one per failed assertion (a subtest's own line ends with its time), with where it failed; a file
// with none (it crashed, or set an exit code) by how it ended
console.log(`\n# ${failed.length} test file(s) failed:`)
for (const { f, blocks, top } of failed) {
  const leaves = blocks.filter(b => !/# time=[\d.]+m?s$/.test(b[0]))
  if (leaves.length === 0) {
    const how = (top ?? blocks.at(-1) ?? []).filter(l => /^\s*(exitCode|signal|timeout|message):/.test(l)).map(l => l.trim()).join(', ')
    console.log(`#   ${f}: no assertion failed: it ended ${how || 'early'}`)
  }
  for (const b of leaves) {
    const at = b.join('\n').match(/^(\s*)stack: [|>]-?\n((?:\1\s+\S.*\n?){1,2})/m)?.[2].trim().split('\n').map(l => l.trim()).join(' < ')
    console.log(`#   ${f}: ${b[0].trim()}${at ? ` (${at})` : ''}`)
  }
}

function name(f: string): string {
  return relative(ROOT, f).replace(/\.tap$/, '')
}
