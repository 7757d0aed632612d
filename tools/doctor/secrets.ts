import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { readSecretFile, SecretFileModeError } from '../../lib/security/secret-file.js'
import { KeyRing } from '../../lib/security/tokens.js'
import { fail, ok, reason, warn, type Finding } from './finding.js'

/**
 * The secrets a role reads, checked as the service reads them
 * (lib/security/secret-file.ts): the environment variable wins over the file; a file
 * must exist, be readable, hold something, and give its group and others no
 * permission (0600). A secret the role can run without is a warning that says
 * what stays closed without it; one it cannot run without (the play-token
 * keys under requireToken, the admin token for an ingest) is a failure.
 */
export interface SecretNeed {
  setting: string
  file: string
  /** the environment variable that wins over the file, if the setting has one */
  env?: string
  /** what is refused or closed without it */
  without: string
  required?: boolean
  /** token keys (`kid:secret,...`) are parsed as the services parse them */
  keys?: boolean
}

export function checkSecret(need: SecretNeed, env: NodeJS.ProcessEnv): Finding {
  const check = 'secret'
  if (need.env && env[need.env]) return ok(check, `${need.setting}: ${need.env} is set in the environment (it wins over the file)`)
  if (!need.file) {
    const msg = `${need.setting} is empty${need.env ? ` and ${need.env} is not set` : ''}: ${need.without}`
    const fix = `write the secret to a file (mode 0600, owned by the service's user) and set ${need.setting} to it`
    return need.required ? fail(check, msg, fix) : warn(check, msg, fix)
  }
  let text: string
  try {
    text = readSecretFile(need.file)
  } catch (err) {
    if (err instanceof SecretFileModeError) return fail(check, `${need.setting}: ${err.message}`, `chmod 600 ${need.file}`)
    const code = (err as NodeJS.ErrnoException).code
    const fix = code === 'ENOENT' ? `create ${need.file} (mode 0600, owned by the service's user) or set ${need.setting}`
      : `chown the service's user ${need.file} (mode 0600)`
    return fail(check, `${need.setting} ${need.file} cannot be read: ${reason(err)}`, fix)
  }
  if (!text.trim()) return fail(check, `${need.setting} ${need.file} is empty`, `write the secret into ${need.file}`)
  if (need.keys) {
    try {
      KeyRing.parse(text.trim())
    } catch (err) {
      return fail(check, `${need.setting} ${need.file} does not hold token keys: ${(err as Error).message}`, 'write kid:secret,... into it (the first key signs, all verify)')
    }
  }
  return ok(check, `${need.setting} ${need.file} is private (no group or other access) and not empty`)
}

/** Days left under which a certificate is a warning (the alert rules' "certificates near expiry"). */
export const CERT_WARN_DAYS = 14

/** http.tlsCertFile and tlsKeyFile: readable, the key private, the certificate in date. */
export function checkTls(certFile: string, keyFile: string, now: number): Finding[] {
  const check = 'tls'
  if (!certFile) return [ok(check, 'no http.tlsCertFile: plain HTTP (put TLS in front, or set http.tlsCertFile and http.tlsKeyFile)')]
  const out: Finding[] = []
  let cert: X509Certificate
  try {
    cert = new X509Certificate(readFileSync(certFile))
  } catch (err) {
    return [fail(check, `http.tlsCertFile ${certFile} cannot be read as a PEM certificate: ${reason(err)}`, `fix ${certFile} or set http.tlsCertFile`)]
  }
  const left = (Date.parse(cert.validTo) - now) / 86_400_000
  if (left <= 0) out.push(fail(check, `http.tlsCertFile ${certFile} expired on ${cert.validTo}`, 'renew the certificate'))
  else if (Date.parse(cert.validFrom) > now) out.push(fail(check, `http.tlsCertFile ${certFile} is not valid before ${cert.validFrom}`, 'check the clock, or the certificate'))
  else if (left < CERT_WARN_DAYS) out.push(warn(check, `http.tlsCertFile ${certFile} expires in ${left.toFixed(1)} days (${cert.validTo})`, 'renew the certificate'))
  else out.push(ok(check, `http.tlsCertFile ${certFile} is valid until ${cert.validTo}`))
  out.push(checkSecret({ setting: 'http.tlsKeyFile', file: keyFile, without: 'no TLS', required: true }, {}))
  return out
}
