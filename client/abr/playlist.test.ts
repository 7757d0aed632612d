import t from 'tap'
import { masterPlaylist, mediaPlaylist } from '../../lib/media/hls.js'
import type { Rendition } from '../../lib/media/rendition.js'
import { parseAttributes, parseMaster, parseMedia, rebase } from './playlist.js'

/**
 * The player's playlist parser: the playlists lib/media/hls.ts writes (what
 * the router and the edge answer), and the RFC 8216 forms others write.
 */
const H = (c: string) => c.repeat(64)
const rendition = (id: string, o: Partial<Rendition>): Rendition => ({
  id, type: 'video', version: '0123456789abcdef', size: 1_000_000, sha256: H('a'), chunks: [H('b')], blocks: [H('c')], contentType: 'video/mp4',
  codecs: 'avc1.64001f', bandwidth: 1_000_000, averageBandwidth: 800_000, width: 1280, height: 720, frameRate: 25, timescale: 12800, init: 800,
  segments: { start: 0, sizes: [1000, 2000, 1500], durations: [25600, 25600, 12800] }, ...o,
})
const ladder: Rendition[] = [
  rendition('v360', { bandwidth: 700_000, averageBandwidth: 600_000, width: 640, height: 360 }),
  rendition('v720', {}),
  rendition('a128', { type: 'audio', contentType: 'audio/mp4', codecs: 'mp4a.40.2', bandwidth: 130_000, averageBandwidth: 128_000,
    width: undefined, height: undefined, frameRate: undefined, sampleRate: 48000, channels: 2, timescale: 48000, init: 600,
    segments: { start: 0, sizes: [30_000, 30_000, 15_000], durations: [96000, 96000, 48000] } }),
]
const base = 'http://edge.example:8080/v1/content/movie/t/TOKEN.abc-123/master.m3u8'

t.test('the master playlist lib/media/hls.ts writes: variants lowest first, the audio group, URLs under the token path', async t => {
  const m = parseMaster(masterPlaylist(ladder), base)
  t.equal(m.variants.length, 2)
  t.same(m.variants.map(v => v.uri), ['v360.m3u8', 'v720.m3u8'], 'ascending by BANDWIDTH')
  const v = m.variants[1]!
  t.equal(v.bandwidth, 1_130_000, 'video peak + audio peak')
  t.equal(v.averageBandwidth, 928_000)
  t.equal(v.codecs, 'avc1.64001f,mp4a.40.2', 'a quoted list with a comma in it')
  t.same([v.width, v.height, v.frameRate, v.audio], [1280, 720, 25, 'aud'])
  t.equal(v.url, 'http://edge.example:8080/v1/content/movie/t/TOKEN.abc-123/v720.m3u8', 'the token path segment is kept')
  t.same(m.audio, [{ groupId: 'aud', name: 'audio', uri: 'a128.m3u8', url: 'http://edge.example:8080/v1/content/movie/t/TOKEN.abc-123/a128.m3u8', default: true }])
})

t.test('a media playlist: EXT-X-MAP with BYTERANGE, EXT-X-BYTERANGE with offsets, EXTINF durations', async t => {
  const p = parseMedia(mediaPlaylist(ladder[1]!), 'http://edge.example:8080/v1/content/movie/t/TOK/v720.m3u8')
  t.equal(p.targetDuration, 2)
  t.ok(p.endList)
  t.same(p.init, { uri: 'v720.mp4', url: 'http://edge.example:8080/v1/content/movie/t/TOK/v720.mp4', range: { offset: 0, length: 800 } })
  t.same(p.segments.map(s => s.range), [{ offset: 800, length: 1000 }, { offset: 1800, length: 2000 }, { offset: 3800, length: 1500 }],
    'the segments tile the file after the init segment')
  t.same(p.segments.map(s => s.duration), [2, 2, 1])
  t.same(p.segments.map(s => s.start), [0, 2, 4])
  t.equal(p.duration, 5)
})

t.test('RFC 8216 forms lib/media/hls.ts does not write', async t => {
  const p = parseMedia(`#EXTM3U\r
#EXT-X-VERSION:4\r
#EXT-X-TARGETDURATION:4\r
# a comment\r
#EXT-X-MAP:URI="../init.mp4"\r
#EXTINF:4.0,first, with a title\r
#EXT-X-BYTERANGE:100@0\r
seg.mp4\r
#EXTINF:4.0,\r
#EXT-X-BYTERANGE:200\r
seg.mp4\r
#EXTINF:3.5,\r
#EXT-X-BYTERANGE:50\r
seg.mp4\r
#EXTINF:2,\r
other.mp4?x=1\r
#EXT-X-ENDLIST\r
`, 'http://h/a/b/p.m3u8?token=q')
  t.same(p.init, { uri: '../init.mp4', url: 'http://h/a/init.mp4', range: { offset: 0, length: undefined } }, 'no BYTERANGE: the whole resource')
  t.same(p.segments.map(s => s.range), [{ offset: 0, length: 100 }, { offset: 100, length: 200 }, { offset: 300, length: 50 }, { offset: 0, length: undefined }],
    'no offset: right after the previous segment of the same resource')
  t.equal(p.segments[0]!.url, 'http://h/a/b/seg.mp4', 'a query on the playlist is not carried to its segments (RFC 3986)')
  t.equal(p.segments[3]!.url, 'http://h/a/b/other.mp4?x=1')
  t.equal(p.duration, 13.5)
})

t.test('attribute lists', async t => {
  t.same([...parseAttributes('A=1,B="x,y",C=0x1F,RESOLUTION=640x360,D=-2.5,E=NO')],
    [['A', '1'], ['B', 'x,y'], ['C', '0x1F'], ['RESOLUTION', '640x360'], ['D', '-2.5'], ['E', 'NO']])
  t.throws(() => parseAttributes('A=1,,B=2'), { code: 'CDN_ERR_PLAYLIST', message: /malformed attribute list/ })
})

t.test('what this player cannot play is refused by name', async t => {
  const url = 'http://h/p.m3u8'
  t.throws(() => parseMaster('<html>', url), { code: 'CDN_ERR_PLAYLIST', message: /^http:\/\/h\/p\.m3u8: not an HLS playlist/ })
  t.throws(() => parseMaster(mediaPlaylist(ladder[0]!), url), /a media playlist where a master playlist was expected/)
  t.throws(() => parseMedia(masterPlaylist(ladder), url), /a master playlist where a media playlist was expected/)
  t.throws(() => parseMaster('#EXTM3U\n#EXT-X-VERSION:6\n', url), /no variant/)
  t.throws(() => parseMaster('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n', url), /not followed by a URI/)
  t.throws(() => parseMaster('#EXTM3U\n#EXT-X-STREAM-INF:CODECS="x"\nv.m3u8\n', url), /has no BANDWIDTH/)
  t.throws(() => parseMaster('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=big\nv.m3u8\n', url), /RESOLUTION is WxH/)
  const media = (body: string) => `#EXTM3U\n#EXT-X-TARGETDURATION:2\n${body}\n#EXT-X-ENDLIST\n`
  t.throws(() => parseMedia(media('#EXT-X-KEY:METHOD=AES-128,URI="k"\n#EXTINF:2,\ns.ts'), url), /encrypted segments \(EXT-X-KEY METHOD=AES-128\)/)
  t.throws(() => parseMedia(media('#EXTINF:2,\n#EXT-X-BYTERANGE:10@0\na.mp4\n#EXTINF:2,\n#EXT-X-BYTERANGE:10\nb.mp4'), url), /without an offset for b\.mp4/)
  t.throws(() => parseMedia(media('s.mp4'), url), /no EXTINF before it/)
  t.throws(() => parseMedia(media('#EXTINF:x,\ns.mp4'), url), /EXTINF duration/)
  t.throws(() => parseMedia('#EXTM3U\n#EXTINF:2,\ns.mp4\n', url), /without EXT-X-TARGETDURATION/)
  t.throws(() => parseMedia(media(''), url), /no segment/)
})

t.test('rebase: the same relative URIs under another server\'s master URL', async t => {
  const other = 'http://edge2:8081/v1/content/movie/t/OTHERTOKEN/master.m3u8'
  t.equal(rebase(other, 'v720.m3u8'), 'http://edge2:8081/v1/content/movie/t/OTHERTOKEN/v720.m3u8')
  t.equal(rebase(other, 'v720.m3u8', 'v720.mp4'), 'http://edge2:8081/v1/content/movie/t/OTHERTOKEN/v720.mp4')
  t.equal(rebase(other, 'sub/v.m3u8', '../v.mp4'), 'http://edge2:8081/v1/content/movie/t/OTHERTOKEN/v.mp4')
})
