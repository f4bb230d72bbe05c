import {inspect} from 'node:util'

/**
 * A secret value that cannot leak by accident: JSON.stringify, String(), template literals and
 * console.log / util.inspect all show the placeholder, never the secret.
 */
export abstract class Redacted {
  protected constructor(private readonly placeholder: string) {}

  toJSON(): string {
    return this.placeholder
  }

  toString(): string {
    return this.placeholder
  }

  [inspect.custom](): string {
    return this.placeholder
  }
}
