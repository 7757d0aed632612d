/**
 * The watch page (`GET /watch/{contentId}` on the router and the edge): plain
 * HTML with hls.js or dash.js from the service's own `/assets/` (lib/watch/
 * assets.ts), never from a third-party CDN. The page asks `/v1/play` where to
 * play, plays from the first URL, moves to the next on a fatal error (the
 * ranked edges, the origin last), and shows what a viewer and an operator want
 * to see: the server it plays from, the rendition, the buffer, stalls.
 *
 * An adaptive title plays its HLS master with hls.js (`?player=dash`: the MPD
 * with dash.js; Safari without MSE: natively); a single-file title plays as a
 * plain `<video src>`. The script is a static asset: the content id and the
 * play API's URL arrive as JSON in a data attribute, escaped, so nothing a
 * request carries is ever interpreted as HTML or script, and the page's CSP
 * allows scripts from 'self' only.
 */
export interface WatchOptions {
  contentId: string
  /** where `/v1/play/{id}` is asked: '' for this service (the router), the router's URL on an edge */
  playApi: string
  /** the service's name in the page's footer: 'router' or 'edge' */
  service: string
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)

export function watchPage(o: WatchOptions): string {
  const data = escapeHtml(JSON.stringify({ contentId: o.contentId, playApi: o.playApi, service: o.service }))
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(o.contentId)} — reelcdn</title>
<style>
  :root { color-scheme: dark; font: 15px/1.4 system-ui, sans-serif; }
  body { margin: 0; background: #111; color: #eee; }
  main { max-width: 1100px; margin: 0 auto; padding: 12px; }
  h1 { font-size: 18px; margin: 4px 0 10px; font-weight: 600; }
  video { width: 100%; aspect-ratio: 16 / 9; background: #000; display: block; }
  #stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 6px 14px; margin-top: 10px; }
  #stats div { background: #1c1c1c; padding: 6px 8px; border-radius: 4px; }
  #stats b { display: block; font-size: 11px; color: #999; font-weight: 500; text-transform: uppercase; letter-spacing: .04em; }
  #log { margin-top: 10px; font: 12px/1.4 ui-monospace, monospace; color: #aaa; max-height: 9em; overflow: auto; white-space: pre-wrap; }
  select { background: #222; color: #eee; border: 1px solid #444; }
  footer { margin-top: 10px; font-size: 12px; color: #777; }
</style>
</head>
<body>
<main id="watch" data-watch="${data}">
  <h1 id="title">${escapeHtml(o.contentId)}</h1>
  <video id="video" controls playsinline muted></video>
  <div id="stats">
    <div><b>server</b><span id="server">–</span></div>
    <div><b>rendition</b><span id="rendition">–</span></div>
    <div><b>quality</b><select id="quality" aria-label="quality"><option value="-1">auto</option></select></div>
    <div><b>buffer</b><span id="buffer">–</span></div>
    <div><b>stalls</b><span id="stalls">0</span></div>
    <div><b>player</b><span id="player">–</span></div>
  </div>
  <div id="log" aria-live="polite"></div>
  <footer>reelcdn ${escapeHtml(o.service)} · <a href="?player=hls">hls.js</a> · <a href="?player=dash">dash.js</a></footer>
</main>
<script src="/assets/hls.min.js"></script>
<script src="/assets/dash.all.min.js"></script>
<script src="/assets/watch.js"></script>
</body>
</html>
`
}

/** The page's behaviour, served as /assets/watch.js: static text (no request data inside), so a CSP can allow only 'self' scripts. */
export const WATCH_SCRIPT = String.raw`(function () {
  'use strict'
  var cfg = JSON.parse(document.getElementById('watch').dataset.watch)
  var video = document.getElementById('video')
  var $ = function (id) { return document.getElementById(id) }
  var want = new URLSearchParams(location.search).get('player') === 'dash' ? 'dash' : 'hls'
  var state = { urls: [], at: -1, player: null, stalls: 0, levels: [], level: -1, kind: '', host: '' }
  window.reelcdn = state
  function log(msg) {
    var line = new Date().toISOString().slice(11, 19) + ' ' + msg
    var el = $('log'); el.textContent = (line + '\n' + el.textContent).slice(0, 4000)
    console.log('[reelcdn] ' + msg)
  }
  function kbps(bps) { return bps >= 1e6 ? (bps / 1e6).toFixed(2) + ' Mb/s' : Math.round(bps / 1e3) + ' kb/s' }
  function showLevel() {
    var l = state.levels[state.level]
    $('rendition').textContent = l ? (l.height + 'p · ' + kbps(l.bitrate)) : (state.kind === 'file' ? 'single file' : '–')
  }
  function setLevels(levels) {
    state.levels = levels
    var q = $('quality'); q.length = 1
    levels.forEach(function (l, i) { var o = document.createElement('option'); o.value = i; o.textContent = l.height + 'p · ' + kbps(l.bitrate); q.appendChild(o) })
  }
  function destroy() {
    // one teardown per player: dash.js's destroy() resets it already, and a reset() after it throws
    var p = state.player
    state.player = null; state.levels = []; state.level = -1
    try { if (p && p.destroy) p.destroy(); else if (p && p.reset) p.reset() } catch (e) { log('closing the player: ' + e.message) }
    video.removeAttribute('src'); video.load()
  }
  function next(why) {
    if (why) log('fatal on ' + state.host + ': ' + why)
    destroy()
    state.at++
    var u = state.urls[state.at]
    if (!u) { log('no server left to play from'); $('server').textContent = 'none'; return }
    state.kind = u.hls ? 'abr' : 'file'
    state.host = new URL(u.url, location.href).host
    $('server').textContent = u.kind + ' · ' + state.host
    log('playing from ' + u.kind + ' ' + state.host)
    if (state.kind === 'file') { $('player').textContent = '<video>'; video.src = u.url; showLevel(); return }
    if (want === 'dash' && window.dashjs) return playDash(u.dash)
    if (window.Hls && window.Hls.isSupported()) return playHls(u.hls)
    if (video.canPlayType('application/vnd.apple.mpegurl')) { $('player').textContent = 'native HLS'; video.src = u.hls; return }
    if (window.dashjs) return playDash(u.dash)
    next('this browser plays neither HLS nor DASH')
  }
  function playHls(src) {
    $('player').textContent = 'hls.js ' + window.Hls.version
    var hls = new window.Hls({ maxBufferLength: 30 })
    state.player = hls
    hls.on(window.Hls.Events.MANIFEST_PARSED, function (e, d) {
      setLevels(d.levels.map(function (l) { return { height: l.height, bitrate: l.bitrate } }))
      // it starts on its own, as dash.js does (muted, so browsers allow it)
      video.play().catch(function () {})
    })
    hls.on(window.Hls.Events.LEVEL_SWITCHED, function (e, d) { state.level = d.level; showLevel(); log('rendition ' + $('rendition').textContent) })
    hls.on(window.Hls.Events.ERROR, function (e, d) {
      if (!d.fatal) return
      if (d.type === window.Hls.ErrorTypes.MEDIA_ERROR && !state.recovered) { state.recovered = true; log('media error, recovering'); hls.recoverMediaError(); return }
      next(d.type + ' ' + d.details)
    })
    hls.loadSource(src)
    hls.attachMedia(video)
    $('quality').onchange = function () { hls.currentLevel = Number(this.value) }
  }
  function playDash(src) {
    var p = window.dashjs.MediaPlayer().create()
    $('player').textContent = 'dash.js ' + p.getVersion()
    state.player = p
    p.on(window.dashjs.MediaPlayer.events.STREAM_INITIALIZED, function () {
      var list = p.getRepresentationsByType ? p.getRepresentationsByType('video') : []
      setLevels(list.map(function (r) { return { height: r.height, bitrate: r.bandwidth } }))
    })
    p.on(window.dashjs.MediaPlayer.events.QUALITY_CHANGE_RENDERED, function (e) {
      if (e.mediaType !== 'video') return
      var r = e.newRepresentation
      state.level = r ? state.levels.findIndex(function (l) { return l.height === r.height && l.bitrate === r.bandwidth }) : e.newQuality
      showLevel(); log('rendition ' + $('rendition').textContent)
    })
    // dash.js may report more than one error for one failure: only the player playing now moves to the next URL
    p.on(window.dashjs.MediaPlayer.events.ERROR, function (e) { if (state.player === p) next('dash.js ' + ((e.error && (e.error.message || e.error.code)) || 'error')) })
    p.initialize(video, src, true)
    $('quality').onchange = function () {
      var i = Number(this.value)
      p.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: i < 0 } } } })
      if (i >= 0 && p.getRepresentationsByType) { var r = p.getRepresentationsByType('video')[i]; if (r) p.setRepresentationForTypeById('video', r.id) }
    }
  }
  video.addEventListener('waiting', function () { if (video.currentTime > 0) { state.stalls++; $('stalls').textContent = state.stalls } })
  video.addEventListener('error', function () { if (state.kind === 'file') next('media error ' + (video.error && video.error.code)) })
  setInterval(function () {
    var b = video.buffered, ahead = 0
    for (var i = 0; i < b.length; i++) if (b.start(i) <= video.currentTime && video.currentTime <= b.end(i)) ahead = b.end(i) - video.currentTime
    $('buffer').textContent = ahead.toFixed(1) + ' s at ' + video.currentTime.toFixed(1) + ' s'
    state.buffer = ahead
  }, 500)
  fetch(cfg.playApi + '/v1/play/' + encodeURIComponent(cfg.contentId))
    .then(function (r) { return r.json().then(function (b) { if (!r.ok) throw new Error((b.error && b.error.message) || ('HTTP ' + r.status)); return b }) })
    .then(function (b) { if (b.title) $('title').textContent = b.title; state.urls = b.urls || []; next() })
    .catch(function (err) { log('/v1/play: ' + err.message); $('server').textContent = 'none' })
})()`
