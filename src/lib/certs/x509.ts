/**
 * The one place @peculiar/x509 is set up: it needs a Reflect polyfill (for its DI container)
 * loaded before it, and a WebCrypto provider, which on Node is `crypto.webcrypto`.
 */
import 'reflect-metadata'

import {webcrypto} from 'node:crypto'

import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as unknown as Crypto)

export {x509}
export const subtle = webcrypto.subtle as unknown as SubtleCrypto
