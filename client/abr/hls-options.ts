import type { Dispatcher } from 'undici'
import type { Source } from '../source-choice.js'
import type { TokenBucket } from '../token-bucket.js'
import type { AbrControllerOptions } from './controller.js'
import type { ByteRange, Variant } from './playlist.js'

/** What the HLS player (client/abr/hls-player.ts) takes, and what it hands out: its options, each segment it fetched, a rung of its ladder. */
export interface HlsPlayerOptions {
  dispatcher?: Dispatcher
  /** per request: time to headers and the longest pause between body bytes, ms (10 s) */
  timeoutMs?: number
  /** how long an edge's master may take and still be chosen over the origin, ms (1 s) */
  probeBudgetMs?: number
  /** the viewer's link: every byte read passes through it */
  link?: TokenBucket
  /** scenario seconds per wall second (1) */
  speed?: number
  /** media seconds buffered before playback starts, resumes, or restarts after a seek (2) */
  startupS?: number
  /** the most media buffered ahead, seconds (30) */
  maxBufferS?: number
  /** failovers one request may take (8) */
  maxAttempts?: number
  controller?: Partial<Omit<AbrControllerOptions, 'maxBufferS'>>
  /** every init and media segment as it lands, bytes included (they are kept only when this is set) */
  onSegment?: (s: FetchedSegment) => void
}

export interface FetchedSegment {
  track: 'video' | 'audio'
  kind: 'init' | 'media'
  /** the variant's or audio rendition's playlist URI, as the master writes it (`v720.m3u8`) */
  playlist: string
  rung: number | undefined
  index: number
  url: string
  range: ByteRange
  bytes: Buffer
  server: Source
  trial: boolean
}

export interface Rung {
  /** the playlist URI without `.m3u8`: `v720` */
  name: string
  variant: Variant
}
