/**
 * A counting semaphore with a bounded queue. It guards a per-process resource
 * (CPU for hashing), so keeping it in memory is right: it holds no login state.
 */
export class OverloadedError extends Error {
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds = 1) {
    super('the server is busy; try again shortly');
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class Semaphore {
  readonly #limit: number;
  readonly #queueLimit: number;
  #active = 0;
  readonly #waiting: Array<() => void> = [];
  #rejected = 0;

  constructor(limit: number, queueLimit: number) {
    this.#limit = limit;
    this.#queueLimit = queueLimit;
  }

  get stats() {
    return { active: this.#active, waiting: this.#waiting.length, rejected: this.#rejected };
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#active >= this.#limit) {
      if (this.#waiting.length >= this.#queueLimit) {
        this.#rejected += 1;
        throw new OverloadedError(1);
      }
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#active += 1;
    }
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      // Hand the slot straight to the next waiter; otherwise release it.
      if (next) next();
      else this.#active -= 1;
    }
  }
}
