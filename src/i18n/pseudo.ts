/**
 * The pseudo-language: each English message with its letters swapped for
 * accented look-alikes and wrapped in ⟦ ⟧. A page rendered in it shows at a
 * glance (and to a test) any text that did not come from the catalogue: that
 * text is still plain ASCII. Parameters, tags and plural forms are kept.
 */
import type { MessageFormatElement } from '@formatjs/icu-messageformat-parser';
import { mapLiterals } from './message-ast.ts';

const ACCENTED: Record<string, string> = {
  a: 'á',
  b: 'ƀ',
  c: 'ç',
  d: 'ð',
  e: 'é',
  f: 'ƒ',
  g: 'ĝ',
  h: 'ĥ',
  i: 'í',
  j: 'ĵ',
  k: 'ķ',
  l: 'ĺ',
  m: 'ɱ',
  n: 'ñ',
  o: 'ó',
  p: 'þ',
  q: 'ʠ',
  r: 'ŕ',
  s: 'š',
  t: 'ţ',
  u: 'ú',
  v: 'ṽ',
  w: 'ŵ',
  x: 'ẋ',
  y: 'ý',
  z: 'ž',
  A: 'Á',
  B: 'Ɓ',
  C: 'Ç',
  D: 'Ð',
  E: 'É',
  F: 'Ƒ',
  G: 'Ĝ',
  H: 'Ĥ',
  I: 'Í',
  J: 'Ĵ',
  K: 'Ķ',
  L: 'Ĺ',
  M: 'Ṁ',
  N: 'Ñ',
  O: 'Ó',
  P: 'Þ',
  Q: 'Ǫ',
  R: 'Ŕ',
  S: 'Š',
  T: 'Ţ',
  U: 'Ú',
  V: 'Ṽ',
  W: 'Ŵ',
  X: 'Ẋ',
  Y: 'Ý',
  Z: 'Ž',
};

export const pseudoText = (text: string) => text.replace(/[A-Za-z]/g, (c) => ACCENTED[c] ?? c);

export function pseudoElements(ast: MessageFormatElement[]): MessageFormatElement[] {
  const marked = mapLiterals(ast, pseudoText);
  return [{ type: 0, value: '⟦' } as MessageFormatElement, ...marked, { type: 0, value: '⟧' } as MessageFormatElement];
}
