import t from 'tap'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { masterPlaylist } from '../../lib/media/hls.js'
import { makeLadder, recordOf, storedLocally } from '../helpers/abr.js'

/**
 * What the master playlist says of each rendition is what ffprobe finds in
 * the file: CODECS (avc1 profile and level, mp4a object type), BANDWIDTH and
 * AVERAGE-BANDWIDTH against ffprobe's stream bit rates (video + audio, as
 * RFC 8216 counts a variant), RESOLUTION. The playlist's figures come from
 * our own box reader (lib/media/fmp4.ts); ffprobe is the independent check.
 */
const run = promisify(execFile)
const PROFILE_IDC: Record<string, number> = { 'Constrained Baseline': 0x42, Baseline: 0x42, Main: 0x4d, High: 0x64 }

interface Probe { streams: { codec_name: string; profile: string; level?: number; bit_rate: string; width?: number; height?: number }[] }
const probe = async (file: string) => JSON.parse((await run('/usr/bin/ffprobe', ['-v', 'error', '-show_entries',
  'stream=codec_name,profile,level,bit_rate,width,height', '-of', 'json', file])).stdout) as Probe

t.test('CODECS, BANDWIDTH, AVERAGE-BANDWIDTH and RESOLUTION of the master agree with ffprobe', async t => {
  const dir = t.testdir()
  const files = await makeLadder(dir, 8, { rungs: [{ id: 'v360', height: 360, kbps: 1200 }, { id: 'v180', height: 180, kbps: 400 }] })
  const records = files.map(f => recordOf(f, storedLocally(f.bytes, 64 * 1024 ** 2)))
  const master = masterPlaylist(records)
  const audio = (await probe(join(dir, 'a64.mp4'))).streams[0]!
  t.equal(audio.codec_name, 'aac')
  t.equal(audio.profile, 'LC', 'AAC-LC, which mp4a.40.2 names')
  for (const id of ['v360', 'v180']) {
    const line = master.split('\n').find((l, i, all) => all[i + 1] === `${id}.m3u8`)!
    const attr = (k: string) => new RegExp(`(?:^|[:,])${k}=("[^"]*"|[^,]*)`).exec(line)?.[1]?.replace(/"/g, '')
    const v = (await probe(join(dir, `${id}.mp4`))).streams[0]!
    const [avc, aac] = attr('CODECS')!.split(',')
    const m = /^avc1\.([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/.exec(avc!)
    t.ok(m, `${id}: ${avc} is an avc1 string`)
    t.equal(parseInt(m![1]!, 16), PROFILE_IDC[v.profile], `${id}: profile_idc of ${avc} is ffprobe's ${v.profile}`)
    t.equal(parseInt(m![3]!, 16), v.level, `${id}: level of ${avc} is ffprobe's ${v.level}`)
    t.equal(aac, 'mp4a.40.2')
    t.equal(attr('RESOLUTION'), `${v.width}x${v.height}`, `${id}: RESOLUTION`)
    const probed = Number(v.bit_rate) + Number(audio.bit_rate)
    const avg = Number(attr('AVERAGE-BANDWIDTH'))
    const peak = Number(attr('BANDWIDTH'))
    t.ok(Math.abs(avg - probed) / probed < 0.05, `${id}: AVERAGE-BANDWIDTH ${avg} within 5 % of ffprobe's video + audio ${probed}`)
    t.ok(peak >= avg && peak < probed * 1.5, `${id}: BANDWIDTH ${peak}, the peak segment, at least the average and near it for a capped encode`)
  }
})
