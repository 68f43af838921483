/**
 * Proves password hashing: argon2id with exactly the configured m/t/p,
 * verification that says yes, no, or "yes but rehash", and the bounded gate
 * in front of it: never more than `concurrency` hashes at once, at most
 * `queueLimit` waiting, and OverloadedError (not a timeout) beyond that.
 * (The rehash-on-login upgrade is proven in test/integration/accounts.test.ts.)
 */
import { describe, expect, test } from '@jest/globals';
import { OverloadedError, PasswordHasher } from '../../src/accounts/password-hasher.ts';
import { Semaphore } from '../../src/security/semaphore.ts';

const cheap = { memoryCost: 8192, timeCost: 1, parallelism: 1, concurrency: 4, queueLimit: 16 };

describe('PasswordHasher', () => {
  test('the hash is argon2id with the configured parameters and a random salt', async () => {
    const hasher = new PasswordHasher({ ...cheap, memoryCost: 9216, timeCost: 2, parallelism: 2 });
    const a = await hasher.hash('correct horse battery');
    expect(a).toMatch(/^\$argon2id\$v=19\$m=9216,t=2,p=2\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    const b = await hasher.hash('correct horse battery');
    expect(b).not.toBe(a);
    expect(hasher.needsRehash(a)).toBe(false);
  });

  test('verify accepts the password and refuses anything else', async () => {
    const hasher = new PasswordHasher(cheap);
    const stored = await hasher.hash('correct horse battery');
    expect(await hasher.verify(stored, 'correct horse battery')).toEqual({ ok: true, needsRehash: false });
    expect(await hasher.verify(stored, 'correct horse batterY')).toEqual({ ok: false });
    expect(await hasher.verify(stored, '')).toEqual({ ok: false });
  });

  test('a malformed stored hash never verifies and never throws', async () => {
    const hasher = new PasswordHasher(cheap);
    expect(await hasher.verify('', 'x')).toEqual({ ok: false });
    expect(await hasher.verify('$argon2id$v=19$m=8192,t=1,p=1$bm9wZQ$bm9wZQ', 'x')).toEqual({ ok: false });
    expect(await hasher.verify('plaintext-password', 'plaintext-password')).toEqual({ ok: false });
  });

  test('needsRehash is true for any other parameters or algorithm', async () => {
    const current = new PasswordHasher(cheap);
    const stored = await current.hash('pw');
    expect(current.needsRehash(stored)).toBe(false);
    expect(new PasswordHasher({ ...cheap, memoryCost: 9216 }).needsRehash(stored)).toBe(true);
    expect(new PasswordHasher({ ...cheap, timeCost: 2 }).needsRehash(stored)).toBe(true);
    expect(new PasswordHasher({ ...cheap, parallelism: 2 }).needsRehash(stored)).toBe(true);
    expect(current.needsRehash(stored.replace('$argon2id$', '$argon2i$'))).toBe(true);
    expect(current.needsRehash('$2b$10$abcdefghijklmnopqrstuv')).toBe(true);

    // A hash with other parameters still verifies, flagged for rehash.
    const stronger = new PasswordHasher({ ...cheap, memoryCost: 9216 });
    expect(await stronger.verify(stored, 'pw')).toEqual({ ok: true, needsRehash: true });
  });

  test('verifyDummy does a real verification and always resolves', async () => {
    const hasher = new PasswordHasher(cheap);
    await expect(hasher.verifyDummy('anything')).resolves.toBeUndefined();
    await expect(hasher.verifyDummy('anything')).resolves.toBeUndefined();
  });

  test('with concurrency 1 and queueLimit 1, a third simultaneous hash is refused with OverloadedError', async () => {
    const hasher = new PasswordHasher({ ...cheap, concurrency: 1, queueLimit: 1 });
    const results = await Promise.allSettled([hasher.hash('one'), hasher.hash('two'), hasher.hash('three')]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    const reason = (results[2] as PromiseRejectedResult).reason;
    expect(reason).toBeInstanceOf(OverloadedError);
    expect((reason as OverloadedError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(hasher.stats).toEqual({ active: 0, waiting: 0, rejected: 1 });

    // Once the burst is over, the gate admits work again.
    await expect(hasher.hash('four')).resolves.toMatch(/^\$argon2id\$/);
  });

  test('verification goes through the same gate', async () => {
    const hasher = new PasswordHasher({ ...cheap, concurrency: 1, queueLimit: 0 });
    const stored = await hasher.hash('pw');
    const results = await Promise.allSettled([hasher.verify(stored, 'pw'), hasher.verify(stored, 'pw')]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: { ok: true, needsRehash: false } });
    expect(results[1]!.status).toBe('rejected');
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(OverloadedError);
  });
});

describe('Semaphore', () => {
  function deferred() {
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  }

  test('never runs more than the limit at once, and hands slots to waiters in order', async () => {
    const gate = new Semaphore(2, 10);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    const gates = Array.from({ length: 6 }, () => deferred());
    const tasks = gates.map((d, i) =>
      gate.run(async () => {
        running += 1;
        peak = Math.max(peak, running);
        order.push(i);
        await d.promise;
        running -= 1;
        return i;
      }),
    );
    await Promise.resolve();
    expect(gate.stats).toMatchObject({ active: 2, waiting: 4 });
    for (const d of gates) {
      d.resolve();
      await new Promise((r) => setImmediate(r));
    }
    expect(await Promise.all(tasks)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(peak).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
    expect(gate.stats).toEqual({ active: 0, waiting: 0, rejected: 0 });
  });

  test('a failing task releases its slot', async () => {
    const gate = new Semaphore(1, 1);
    const first = deferred();
    const a = gate.run(() => first.promise);
    const b = gate.run(async () => 'b');
    first.reject(new Error('boom'));
    await expect(a).rejects.toThrow('boom');
    await expect(b).resolves.toBe('b');
    expect(gate.stats).toEqual({ active: 0, waiting: 0, rejected: 0 });
  });

  test('beyond the queue limit callers are refused at once', async () => {
    const gate = new Semaphore(1, 2);
    const hold = deferred();
    const running = [gate.run(() => hold.promise), gate.run(async () => 1), gate.run(async () => 2)];
    await expect(gate.run(async () => 3)).rejects.toBeInstanceOf(OverloadedError);
    await expect(gate.run(async () => 4)).rejects.toBeInstanceOf(OverloadedError);
    expect(gate.stats).toEqual({ active: 1, waiting: 2, rejected: 2 });
    hold.resolve();
    await Promise.all(running);
    expect(gate.stats).toEqual({ active: 0, waiting: 0, rejected: 2 });
  });
});
