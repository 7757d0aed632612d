/**
 * What one check of `reelcdn doctor` found. `fail` stops the service from
 * working (or starting); `warn` is a choice the operator should know they made
 * (a missing optional secret, an unsynchronised clock); `skip` is a check that
 * could not run here, with why. `fix` says what to do, in one sentence.
 */
export type Status = 'ok' | 'warn' | 'fail' | 'skip'

export interface Finding {
  check: string
  status: Status
  message: string
  fix?: string
}

export const ok = (check: string, message: string): Finding => ({ check, status: 'ok', message })
export const warn = (check: string, message: string, fix?: string): Finding => ({ check, status: 'warn', message, ...(fix ? { fix } : {}) })
export const fail = (check: string, message: string, fix: string): Finding => ({ check, status: 'fail', message, fix })
export const skip = (check: string, message: string): Finding => ({ check, status: 'skip', message })

/** an errno's code and meaning, as the services' own start checks word it */
export { reason } from '../../lib/storage/data-dir.js'
