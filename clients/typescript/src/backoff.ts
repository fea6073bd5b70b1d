/** Full-jitter exponential backoff: attempt n waits a uniform random time in [0, min(max, min·2ⁿ)]. */

export interface BackoffOptions {
  /** Upper bound of the first wait, ms (default 500). */
  minDelayMs?: number;
  /** The cap, ms (default 20000). */
  maxDelayMs?: number;
  /** Added before the jitter after a 4008 (rate or connection limit), ms (default 5000). */
  limitedDelayMs?: number;
}

export class Backoff {
  private attempt = 0;
  readonly min: number;
  readonly max: number;
  readonly limited: number;

  constructor(options: BackoffOptions = {}, private readonly random: () => number = Math.random) {
    this.min = options.minDelayMs ?? 500;
    this.max = options.maxDelayMs ?? 20_000;
    this.limited = options.limitedDelayMs ?? 5_000;
    if (!(this.min > 0 && this.max >= this.min && this.limited >= 0)) {
      throw new RangeError("backoff needs 0 < minDelayMs <= maxDelayMs and limitedDelayMs >= 0");
    }
  }

  /** The wait before the next attempt, ms; each call makes the following one longer. */
  next(limited = false): number {
    const ceiling = Math.min(this.max, this.min * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    const jitter = this.random() * ceiling;
    return limited ? Math.min(this.max, this.limited) + jitter : jitter;
  }

  /** After a successful connection: the next wait starts small again. */
  reset(): void {
    this.attempt = 0;
  }
}
