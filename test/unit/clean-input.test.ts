/** What the input guard lets through (src/http/clean-input.ts): clean text, in whatever encoding it arrives. */
import { describe, expect, test } from '@jest/globals';
import { decodeComponent, isCleanText, scanBasicCredentials, scanJson, scanUrlEncoded } from '../../src/http/clean-input.ts';

describe('clean text', () => {
  test.each(['', 'alice', 'Grüße', '😀 a pair of surrogates', 'tab\tand\nnewline', '\ufffd', '\uffff'])('passes: %j', (text) => {
    expect(isCleanText(text)).toBe(true);
  });
  test.each(['a\0b', '\ud800', 'x\udfff', '\udc00\ud800'])('refused: %j', (text) => {
    expect(isCleanText(text)).toBe(false);
  });
});

describe('percent-encoded components', () => {
  test.each<[string, string]>([
    ['name', 'name'],
    ['a+b', 'a b'],
    ['Gr%C3%BC%C3%9Fe', 'Grüße'],
    ['%F0%9F%98%80', '😀'],
    ['100%', '100%'],
    ['%zz', '%zz'],
    ['%2', '%2'],
  ])('%s decodes to %j', (raw, text) => {
    expect(decodeComponent(raw)).toBe(text);
  });
  test.each(['%00', 'name%00', '%FF', '%C3', '%C3%28', '%ED%A0%80', '%C0%80', '%F4%90%80%80', 'a\0'])('%s is refused', (raw) => {
    expect(decodeComponent(raw)).toBeUndefined();
  });
});

describe('scans', () => {
  test('urlencoded text names the first bad parameter, or none when the name itself is bad', () => {
    expect(scanUrlEncoded('a=1&b=2&&c', 'query')).toBeUndefined();
    expect(scanUrlEncoded('a=1&login=x%00', 'form body')).toEqual({ where: 'form body', name: 'login' });
    expect(scanUrlEncoded('a%00=1', 'query')).toEqual({ where: 'query' });
  });

  test('JSON: keys and strings at any depth, without recursion', () => {
    expect(scanJson({ a: [1, { b: 'ok' }], c: null }, 'JSON body')).toBeUndefined();
    expect(scanJson({ a: [1, { b: 'x\u0000' }] }, 'JSON body')).toEqual({ where: 'JSON body', name: 'a' });
    expect(scanJson({ 'k\ud800': 1 }, 'JSON body')).toEqual({ where: 'JSON body' });
    let deep: unknown = 'bad\0';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(scanJson(deep, 'JSON body')).toEqual({ where: 'JSON body' });
  });

  test('HTTP Basic: the client id and secret, form-decoded as the provider does', () => {
    const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
    expect(scanBasicCredentials(basic('web:s3cret'))).toBeUndefined();
    expect(scanBasicCredentials(basic('web%00:s'))).toEqual({ where: 'Authorization header' });
    expect(scanBasicCredentials(basic('web:s\0'))).toEqual({ where: 'Authorization header' });
    expect(scanBasicCredentials(`Basic ${Buffer.from([0x77, 0xff, 0x3a, 0x73]).toString('base64')}`)).toEqual({ where: 'Authorization header' });
    expect(scanBasicCredentials('Bearer abc')).toBeUndefined();
  });
});
