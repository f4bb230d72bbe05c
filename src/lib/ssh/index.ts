export {assertFingerprint, fingerprintOfKeyBlob, fingerprintOfPublicKey, isFingerprint} from './fingerprint.js'
export {HostKeyPin, hostKeyChangedError, hostKeyUnknownError, repinSuggestion, type HostKeyDecision, type HostKeyPolicy} from './host-key.js'
export {HostKeyStore, type HostKeyRecord, type HostKeySource} from './host-key-store.js'
export {
  SshHost,
  type ConnectOptions,
  type ExecOptions,
  type ExecResult,
  type HostKeyOutcome,
  type SshTarget,
  type SystemctlAction,
  type UploadOptions,
} from './host.js'
export {HostPool} from './pool.js'
export {remoteCommand, shellQuote} from './shell.js'
