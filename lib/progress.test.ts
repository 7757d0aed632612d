import t from 'tap'
import { Writable } from 'node:stream'
import { Progress } from './progress.js'

function sink(tty: boolean) {
  const lines: string[] = []
  const w = new Writable({ write(c, _e, cb) { lines.push(String(c)); cb() } }) as unknown as NodeJS.WriteStream
  ;(w as { isTTY?: boolean }).isTTY = tty
  return { w, lines }
}

t.test('off a terminal: plain lines, none before a full period, one at the end', async t => {
  const s = sink(false)
  const p = new Progress({ label: 'upload', total: 4 * 1024 ** 2, unit: 'bytes', stream: s.w, plainEveryMs: 60_000 })
  p.update(1024 ** 2)
  p.update(2 * 1024 ** 2)
  t.same(s.lines, [], 'quiet until a period has passed')
  p.update(4 * 1024 ** 2)
  p.finish('done')
  t.equal(s.lines.length, 1)
  t.match(s.lines[0], /^upload \[#{24}\] 100% 4 MiB \/ 4 MiB [0-9.]+ MB\/s done\n$/)
  t.notMatch(s.lines[0], /\r|\x1b/, 'no terminal control characters')
})

t.test('on a terminal: one line redrawn in place, with an ETA', async t => {
  const s = sink(true)
  const p = new Progress({ label: 'upload', total: 100, unit: 'bytes', stream: s.w })
  p.update(25)
  t.match(s.lines[0], /^\r\x1b\[2Kupload \[#{6}\.{18}\]  25% 25 B \/ 100 B [0-9.]+ MB\/s ETA /)
  p.finish()
  t.match(s.lines.at(-1), /\n$/)
})
