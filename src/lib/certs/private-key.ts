import {Redacted} from './redacted.js'

/**
 * A private key in PEM (PKCS#8) that cannot leak by accident: JSON.stringify, String(),
 * template literals and console.log / util.inspect all show a placeholder. Only `exportPem()`
 * gives the PEM, for writing a 0600 file or sealing it; grep for it to audit every use.
 */
export class PrivateKey extends Redacted {
  readonly #pem: string

  constructor(pem: string) {
    super('[private key redacted]')
    if (!/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n?$/.test(pem)) throw new Error('not a PKCS#8 PEM private key')
    this.#pem = pem.endsWith('\n') ? pem : `${pem}\n`
  }

  /** The PEM text. Never print, log or return it: write it to a 0600 file or seal it. */
  exportPem(): string {
    return this.#pem
  }
}
