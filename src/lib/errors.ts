/**
 * Errors an operator can act on: a stable code, an exit status and a suggested next step.
 * Commands never print stack traces for these; the base command renders them.
 */
export const ExitStatus = {
  ok: 0,
  failure: 1,
  usage: 2,
  precondition: 3,
  partial: 4,
  interrupted: 130,
} as const

export type ExitStatusValue = (typeof ExitStatus)[keyof typeof ExitStatus]

export interface XclusterErrorOptions {
  /** Stable, grep-able identifier, e.g. `SPEC_INVALID`. */
  code: string
  exit?: ExitStatusValue
  /** What the operator should try next. */
  suggestion?: string
  /** Structured details for `--json` output. */
  details?: unknown
  cause?: unknown
}

export class XclusterError extends Error {
  readonly code: string
  readonly exit: ExitStatusValue
  readonly suggestion?: string
  readonly details?: unknown

  constructor(message: string, options: XclusterErrorOptions) {
    super(message, {cause: options.cause})
    this.name = 'XclusterError'
    this.code = options.code
    this.exit = options.exit ?? ExitStatus.failure
    this.suggestion = options.suggestion
    this.details = options.details
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      exit: this.exit,
      ...(this.suggestion ? {suggestion: this.suggestion} : {}),
      ...(this.details === undefined ? {} : {details: this.details}),
    }
  }
}

export const usageError = (message: string, suggestion?: string, details?: unknown): XclusterError => new XclusterError(message, {code: 'USAGE', exit: ExitStatus.usage, suggestion, details})

export const preconditionError = (code: string, message: string, suggestion?: string, details?: unknown): XclusterError =>
  new XclusterError(message, {code, exit: ExitStatus.precondition, suggestion, details})
