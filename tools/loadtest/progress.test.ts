import t from 'tap'
import { Progress, progressText } from './progress.js'

function stream(isTTY: boolean) {
  const out = { isTTY, text: '', write(s: string) { out.text += s; return true } }
  return out
}

t.test('on a terminal the progress line is redrawn in place, at most five times a second', async t => {
  const out = stream(true)
  let now = 0
  const p = new Progress(out, 5000, () => now)
  p.show('one')
  now = 170
  p.show('too soon')
  now = 250
  p.show('two')
  p.show('done', true)
  t.equal(out.text, '\r\x1b[2Kone\r\x1b[2Ktwo\r\x1b[2Kdone\n')
  t.ok(p.tty)
})

t.test('elsewhere it prints plain lines, one per interval, with no control characters', async t => {
  const out = stream(false)
  let now = 0
  const p = new Progress(out, 1000, () => now)
  p.show('one')
  now = 850
  p.show('too soon')
  now = 950
  p.show('two')
  p.show('done', true)
  t.equal(out.text, 'one\ntwo\ndone\n')
  t.notMatch(out.text, /[\r\x1b]/)
  t.notOk(p.tty)
})

t.test('the line shows elapsed time, sessions, MB/s, the hit ratio and the offload so far', async t => {
  t.equal(progressText('players', { elapsedS: 12.4, durationS: 30, active: 7, done: 3, mbps: 41.25, hitRatioSoFar: 0.873, offloadSoFar: 0.5 }),
    'loadtest players 12/30 s  sessions 7 playing, 3 done  41.3 MB/s  hit ratio so far 87.3 %  offload so far 50.0 %')
  t.equal(progressText('http', { elapsedS: 2, durationS: 10, rps: 350, mbps: 22, hitRatioSoFar: null }),
    'loadtest http 2/10 s  350 req/s  22.0 MB/s  hit ratio so far n/a  offload so far n/a')
})
