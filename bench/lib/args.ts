import { InvalidArgumentError } from 'commander'

/** A commander argument parser for a positive integer option of a standalone bench script: `--name <n>`. */
export function positiveInt(name: string): (v: string) => number {
  return v => {
    if (!/^[1-9][0-9]*$/.test(v)) throw new InvalidArgumentError(`expected ${name} to be a positive integer, got ${v}.`)
    return Number(v)
  }
}
