/**
 * The prefill window: `always`, `never`, or `HH:MM-HH:MM` in local time (the
 * edge's TZ), possibly wrapping midnight (`22:00-06:00`). `start(now)` is the
 * start of the window `now` is in, which keys the per-window byte budget.
 */
export interface FillWindow {
  spec: string
  contains(now: Date): boolean
  /** ms timestamp of the start of the window containing `now` (undefined outside) */
  start(now: Date): number | undefined
}

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/

export function parseFillWindow(spec: string): FillWindow {
  if (spec === 'always') return { spec, contains: () => true, start: () => 0 }
  if (spec === 'never') return { spec, contains: () => false, start: () => undefined }
  const [a, b, extra] = spec.split('-')
  const ma = a === undefined ? null : HHMM.exec(a)
  const mb = b === undefined ? null : HHMM.exec(b)
  if (!ma || !mb || extra !== undefined || a === b)
    throw new Error(`expected a fill window such as 02:00-14:00, always or never, got ${JSON.stringify(spec)}`)
  const from = Number(ma[1]) * 60 + Number(ma[2])
  const to = Number(mb[1]) * 60 + Number(mb[2])
  const minuteOf = (d: Date) => d.getHours() * 60 + d.getMinutes()
  const inside = (m: number) => (from < to ? m >= from && m < to : m >= from || m < to)
  return {
    spec,
    contains: now => inside(minuteOf(now)),
    start: now => {
      if (!inside(minuteOf(now))) return undefined
      const d = new Date(now)
      d.setHours(Math.floor(from / 60), from % 60, 0, 0)
      if (d.getTime() > now.getTime()) d.setDate(d.getDate() - 1) // a window that wrapped midnight began yesterday
      return d.getTime()
    },
  }
}
