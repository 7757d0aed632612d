import t from 'tap'
import { isMaster, parseMaster, parseMedia, singleFile } from './hls-playlist.js'

/**
 * Reading HLS packages for `--hls`: the master's variants and audio, a
 * media playlist's init and segments as byte ranges, and every kind of
 * package that cannot become one rendition file per variant refused by
 * name.
 */
const MASTER = `#EXTM3U
#EXT-X-VERSION:6
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",DEFAULT=YES,AUTOSELECT=YES,URI="audio/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Français",DEFAULT=NO,URI="audio/fr.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=3300000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud"
v720/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=300000,URI="v720/iframes.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1400000,RESOLUTION=854x480,AUDIO="aud"
v480/index.m3u8
`

t.test('a master playlist: variants in order, audio renditions with their group and default', async t => {
  t.ok(isMaster(MASTER))
  const m = parseMaster(MASTER, 'm.m3u8')
  t.same(m.variants, [
    { uri: 'v720/index.m3u8', bandwidth: 3300000, resolution: '1280x720', audio: 'aud' },
    { uri: 'v480/index.m3u8', bandwidth: 1400000, resolution: '854x480', audio: 'aud' },
  ])
  t.same(m.audio.map(a => [a.name, a.uri, a.isDefault]), [['English', 'audio/en.m3u8', true], ['Français', 'audio/fr.m3u8', false]])
  t.throws(() => parseMaster('#EXTM3U\n#EXT-X-VERSION:3\n', 'x.m3u8'), { code: 'CDN_ERR_BAD_RENDITIONS', message: /no variants/ })
  t.throws(() => parseMaster('<html>', 'x.m3u8'), { message: 'x.m3u8 is not an HLS playlist: it does not start with #EXTM3U' })
})

t.test('separate segment files: the init, then each segment whole', async t => {
  const p = parseMedia(`#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.0,
seg0.m4s
#EXTINF:4.0,
seg1.m4s
#EXT-X-ENDLIST
`, 'v.m3u8')
  t.same(p, { init: { uri: 'init.mp4' }, segments: [{ uri: 'seg0.m4s' }, { uri: 'seg1.m4s' }] })
  t.equal(singleFile(p), undefined)
})

t.test('one file with byte ranges: offsets carried over when left out; used as is when it tiles the file from 0', async t => {
  const p = parseMedia(`#EXTM3U
#EXT-X-MAP:URI="v.mp4",BYTERANGE="800@0"
#EXTINF:4.0,
#EXT-X-BYTERANGE:1000@800
v.mp4
#EXTINF:4.0,
#EXT-X-BYTERANGE:500
v.mp4
#EXT-X-ENDLIST
`, 'v.m3u8')
  t.same(p.segments, [{ uri: 'v.mp4', offset: 800, length: 1000 }, { uri: 'v.mp4', offset: 1800, length: 500 }])
  t.same(p.init, { uri: 'v.mp4', offset: 0, length: 800 })
  t.equal(singleFile(p), 'v.mp4')
  const gap = parseMedia('#EXTM3U\n#EXT-X-MAP:URI="v.mp4",BYTERANGE="800@0"\n#EXTINF:4,\n#EXT-X-BYTERANGE:1000@900\nv.mp4\n#EXT-X-ENDLIST\n', 'v.m3u8')
  t.equal(singleFile(gap), undefined, 'a gap: joined from its ranges instead')
})

t.test('packages that cannot become rendition files are refused, naming why', async t => {
  const seg = '#EXTINF:4,\nseg0.ts\n#EXT-X-ENDLIST\n'
  t.throws(() => parseMedia(`#EXTM3U\n${seg}`, 'ts.m3u8'), { code: 'CDN_ERR_BAD_RENDITIONS', message: /ts\.m3u8 has no EXT-X-MAP: its segments are MPEG-TS, and only fMP4\/CMAF packages/ })
  t.throws(() => parseMedia('#EXTM3U\n#EXT-X-MAP:URI="i.mp4"\n#EXT-X-KEY:METHOD=AES-128,URI="k"\n#EXTINF:4,\ns.m4s\n#EXT-X-ENDLIST\n', 'k.m3u8'), { message: /is encrypted \(EXT-X-KEY METHOD=AES-128\)/ })
  t.throws(() => parseMedia('#EXTM3U\n#EXT-X-MAP:URI="i.mp4"\n#EXTINF:4,\ns.m4s\n', 'live.m3u8'), { message: /no #EXT-X-ENDLIST: a live or event playlist/ })
  t.throws(() => parseMedia('#EXTM3U\n#EXT-X-MAP:URI="i.mp4"\n#EXTINF:4,\ns.m4s\n#EXT-X-DISCONTINUITY\n#EXTINF:4,\nt.m4s\n#EXT-X-ENDLIST\n', 'd.m3u8'), { message: /discontinuity/ })
  t.throws(() => parseMedia('#EXTM3U\n#EXT-X-MAP:URI="i.mp4"\n#EXT-X-ENDLIST\n', 'e.m3u8'), { message: /no segments/ })
  t.doesNotThrow(() => parseMedia('#EXTM3U\n#EXT-X-MAP:URI="i.mp4"\n#EXT-X-KEY:METHOD=NONE\n#EXTINF:4,\ns.m4s\n#EXT-X-ENDLIST\n', 'n.m3u8'), 'METHOD=NONE is clear')
})
