/**
 * WCAG 2 contrast between two sRGB colours, and the nearest shade of a colour
 * that reaches a given ratio. The brand colour is checked with these at
 * start, so a deployment's own colour cannot make the sign-in pages fail AA.
 * https://www.w3.org/TR/WCAG22/#dfn-contrast-ratio
 */

/** A colour as `#rrggbb`, lowercase. */
export type Hex = `#${string}`;

/** What WCAG 2 AA asks of normal-size text. */
export const AA_TEXT = 4.5;

const HEX = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i;

/** `#rgb`, `#rrggbb` (the `#` optional, any case) as `#rrggbb`; undefined when it is neither. */
export function parseHex(text: string): Hex | undefined {
  const digits = HEX.exec(text.trim())?.[1];
  if (!digits) return undefined;
  const six = digits.length === 3 ? [...digits].map((d) => d + d).join('') : digits;
  return `#${six.toLowerCase()}`;
}

function channels(hex: Hex): [number, number, number] {
  const n = Number.parseInt(hex.slice(1), 16);
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

function toHex([r, g, b]: readonly number[]): Hex {
  return `#${[r!, g!, b!].map((c) => Math.round(c).toString(16).padStart(2, '0')).join('')}`;
}

/** WCAG 2 relative luminance, 0 (black) to 1 (white). */
export function luminance(hex: Hex): number {
  const [r, g, b] = channels(hex).map((c) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}

/** The contrast ratio of two colours, from 1 to 21, whichever is lighter. */
export function contrast(a: Hex, b: Hex): number {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light! + 0.05) / (dark! + 0.05);
}

/**
 * A ratio as an operator reads it, to two decimals (`4.48:1`), or three where
 * two would put it on the other side of `threshold`: WCAG does not round, so
 * 4.499:1 fails and must not read as 4.50:1.
 */
export function formatRatio(ratio: number, threshold = AA_TEXT): string {
  const two = ratio.toFixed(2);
  return Number(two) >= threshold === ratio >= threshold ? `${two}:1` : `${(Math.floor(ratio * 1000) / 1000).toFixed(3)}:1`;
}

/**
 * Black or white, whichever stands out more on `fill`. One of them always
 * reaches at least √21 ≈ 4.58:1 (their ratios on any colour multiply to 21),
 * so text on any fill can meet AA.
 */
export function textOn(fill: Hex): Hex {
  return contrast(fill, '#000000') >= contrast(fill, '#ffffff') ? '#000000' : '#ffffff';
}

/**
 * The shade of `color` nearest to it that reaches `ratio` against
 * `background`: mixed toward black on a light background, toward white on a
 * dark one, keeping its hue. `color` itself when it already does; undefined
 * when not even black or white would.
 */
export function nearestPassing(color: Hex, background: Hex, ratio = AA_TEXT): Hex | undefined {
  if (contrast(color, background) >= ratio) return color;
  const target = luminance(background) > 0.5 ? [0, 0, 0] : [255, 255, 255];
  const from = channels(color);
  // Every step moves each channel further toward the target: the first shade that passes is the nearest one that way.
  for (let step = 1; step <= 1000; step++) {
    const t = step / 1000;
    const shade = toHex(from.map((c, i) => c + (target[i]! - c) * t));
    if (contrast(shade, background) >= ratio) return shade;
  }
  return undefined;
}
