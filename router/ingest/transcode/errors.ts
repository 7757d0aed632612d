import { CdnError } from '../../../lib/errors.js'

/**
 * What can go wrong between a source file and a ladder of renditions, split
 * by whose fault it is, because that decides what happens to the work
 * directory (transcode.ts): a source that is not a video, is cut short or has
 * no picture will fail the same way again, so its work directory is removed;
 * a transcode that failed for any other reason (killed, disk full, ffmpeg
 * crashed) keeps its finished renditions for the next run.
 */

/** The source itself is unusable: not a video, truncated, no video stream. Running again will not help. */
export class SourceError extends CdnError {
  override name = 'SourceError'
  constructor(message: string, options?: ErrorOptions) {
    super(message, { code: 'CDN_ERR_BAD_SOURCE', statusCode: 400, source: 'client' }, options)
  }
}

/** Pre-encoded renditions (--renditions-dir, --hls) that cannot be used as they are. */
export class RenditionInputError extends CdnError {
  override name = 'RenditionInputError'
  constructor(message: string, options?: ErrorOptions) {
    super(message, { code: 'CDN_ERR_BAD_RENDITIONS', statusCode: 400, source: 'client' }, options)
  }
}

/** ffmpeg failed on a source that probed fine: the work directory is kept, and a re-run resumes. */
export class TranscodeError extends CdnError {
  override name = 'TranscodeError'
  constructor(message: string, options?: ErrorOptions) {
    super(message, { code: 'CDN_ERR_TRANSCODE', statusCode: 500, source: 'server', retryable: true }, options)
  }
}

/** ffmpeg or ffprobe is not there and could not be installed. */
export class ToolMissingError extends CdnError {
  override name = 'ToolMissingError'
  constructor(message: string, options?: ErrorOptions) {
    super(message, { code: 'CDN_ERR_NO_FFMPEG', statusCode: 500, source: 'config' }, options)
  }
}
