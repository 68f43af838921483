/**
 * The per-request memo of database reads: inside one scope a key is loaded
 * once; a new scope (the next request) loads it again; outside any scope
 * nothing is remembered; forget() drops a prefix; callers get copies.
 */
import { describe, expect, test } from '@jest/globals';
import { forget, inRequestScope, memoized, remember, withRequestMemo } from '../../src/db/request-memo.ts';

function counter() {
  let loads = 0;
  return {
    load: async () => ({ n: ++loads, nested: { list: [1, 2] } }),
    get loads() {
      return loads;
    },
  };
}

describe('request memo', () => {
  test('outside a request scope every read loads', async () => {
    const c = counter();
    expect(inRequestScope()).toBe(false);
    await memoized('k', c.load);
    await memoized('k', c.load);
    expect(c.loads).toBe(2);
  });

  test('inside one scope a key loads once, concurrent readers included; the next scope loads again', async () => {
    const c = counter();
    await withRequestMemo(async () => {
      expect(inRequestScope()).toBe(true);
      const [a, b] = await Promise.all([memoized('k', c.load), memoized('k', c.load)]);
      await new Promise((r) => setTimeout(r, 1));
      const after = await memoized('k', c.load);
      expect([a.n, b.n, after.n]).toEqual([1, 1, 1]);
      await memoized('other', c.load);
    });
    expect(c.loads).toBe(2);
    await withRequestMemo(async () => {
      expect((await memoized('k', c.load)).n).toBe(3);
    });
  });

  test('concurrent scopes do not share', async () => {
    const c = counter();
    const seen = await Promise.all([1, 2].map(() => withRequestMemo(async () => (await memoized('k', c.load)).n)));
    expect(seen.sort()).toEqual([1, 2]);
  });

  test('forget() drops the keys under a prefix only', async () => {
    const c = counter();
    await withRequestMemo(async () => {
      await memoized('a:1', c.load);
      await memoized('b:1', c.load);
      forget('a:');
      expect((await memoized('a:1', c.load)).n).toBe(3);
      expect((await memoized('b:1', c.load)).n).toBe(2);
    });
  });

  test('each caller gets its own copy', async () => {
    const c = counter();
    await withRequestMemo(async () => {
      const first = await memoized('k', c.load);
      first.nested.list.push(3);
      expect((await memoized('k', c.load)).nested.list).toEqual([1, 2]);
    });
  });

  test('a failed load is not remembered', async () => {
    let calls = 0;
    const flaky = async () => {
      calls += 1;
      if (calls === 1) throw new Error('connection lost');
      return calls;
    };
    await withRequestMemo(async () => {
      await expect(memoized('k', flaky)).rejects.toThrow('connection lost');
      expect(await memoized('k', flaky)).toBe(2);
    });
  });

  test('remember() answers a later read, without replacing one already made', async () => {
    const c = counter();
    await withRequestMemo(async () => {
      remember('r', { n: 0, nested: { list: [] } });
      expect((await memoized('r', c.load)).n).toBe(0);
      await memoized('s', c.load);
      remember('s', { n: 99, nested: { list: [] } });
      expect((await memoized('s', c.load)).n).toBe(1);
    });
    expect(c.loads).toBe(1);
  });
});
