/**
 * The operator's brand (BRAND_NAME, BRAND_LOGO, BRAND_COLOR,
 * BRAND_COLOR_DARK), resolved and checked once, at start: a logo that cannot
 * be shown or a colour that would put a page below WCAG AA stops the start
 * with one line saying what to change, instead of reaching a user.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AA_TEXT, contrast, formatRatio, nearestPassing, textOn, type Hex } from './contrast.ts';

/** The product name when none is configured. */
export const DEFAULT_BRAND_NAME = 'Twofold';

/**
 * The card every text of the sign-in pages sits on (`--card` in
 * interactions/assets/twofold.css, light and dark; test/unit/brand.test.ts
 * holds the two together). The accent colour is read as text (links, the
 * brand, outlined buttons) only there.
 */
export const CARD: Record<Scheme, Hex> = { light: '#ffffff', dark: '#1d2026' };

export type Scheme = 'light' | 'dark';

/** One colour scheme's accent and the text written on an accent fill (the primary button). */
export interface SchemeColors {
  accent: Hex;
  onAccent: Hex;
}

export interface BrandLogo {
  /** The file it was read from (for messages). */
  file: string;
  type: 'svg' | 'png';
  body: Buffer;
}

export interface Brand {
  /** The product name: pages, authenticator apps, passkey prompts, codes' emails and texts. */
  name: string;
  logo?: BrandLogo;
  /** Unset: the built-in colours. */
  colors?: Record<Scheme, SchemeColors>;
}

/** What resolveBrand reads: the brand settings, already parsed by the config schema. */
export interface BrandSettings {
  BRAND_NAME?: string;
  ISSUER_NAME?: string;
  BRAND_LOGO?: string;
  BRAND_COLOR?: Hex;
  BRAND_COLOR_DARK?: Hex;
}

/** A brand setting that cannot be used; `key` names it. */
export class BrandError extends Error {
  constructor(
    readonly key: keyof BrandSettings,
    message: string,
  ) {
    super(message);
  }
}

/** A logo is shown 32 px high on every page; anything this large is the wrong file. */
export const MAX_LOGO_BYTES = 1024 * 1024;

export function resolveBrand(settings: BrandSettings): Brand {
  return { name: brandName(settings), logo: settings.BRAND_LOGO ? readLogo(settings.BRAND_LOGO) : undefined, colors: brandColors(settings) };
}

/** ISSUER_NAME is the setting's older name: either may be set, not two different names. */
function brandName({ BRAND_NAME, ISSUER_NAME }: BrandSettings): string {
  if (BRAND_NAME !== undefined && ISSUER_NAME !== undefined && BRAND_NAME !== ISSUER_NAME) {
    throw new BrandError(
      'ISSUER_NAME',
      `the older name of BRAND_NAME; set only BRAND_NAME (got ISSUER_NAME ${JSON.stringify(ISSUER_NAME)} and BRAND_NAME ${JSON.stringify(BRAND_NAME)})`,
    );
  }
  return BRAND_NAME ?? ISSUER_NAME ?? DEFAULT_BRAND_NAME;
}

/**
 * Each scheme's accent must read at AA on the card. The light one is
 * BRAND_COLOR; the dark one BRAND_COLOR_DARK, else BRAND_COLOR itself where it
 * reads on the dark card, else its nearest lighter shade that does (a brand
 * blue that suits white is usually too dark on a dark card). Text on an accent
 * fill is black or white, whichever stands out more: that always reaches AA.
 */
function brandColors({ BRAND_COLOR, BRAND_COLOR_DARK }: BrandSettings): Brand['colors'] {
  if (!BRAND_COLOR) {
    if (BRAND_COLOR_DARK) throw new BrandError('BRAND_COLOR_DARK', "needs BRAND_COLOR (the light scheme's colour) as well");
    return undefined;
  }
  const light = checkedAccent('BRAND_COLOR', BRAND_COLOR, 'light');
  // White reads at 16:1 on the dark card, so some lighter shade always passes.
  const dark = BRAND_COLOR_DARK ? checkedAccent('BRAND_COLOR_DARK', BRAND_COLOR_DARK, 'dark') : nearestPassing(BRAND_COLOR, CARD.dark)!;
  return { light: { accent: light, onAccent: textOn(light) }, dark: { accent: dark, onAccent: textOn(dark) } };
}

function checkedAccent(key: 'BRAND_COLOR' | 'BRAND_COLOR_DARK', color: Hex, scheme: Scheme): Hex {
  const ratio = contrast(color, CARD[scheme]);
  if (ratio >= AA_TEXT) return color;
  const passing = nearestPassing(color, CARD[scheme]);
  const advice = passing ? `; the nearest ${scheme === 'light' ? 'darker' : 'lighter'} shade that passes is ${passing}` : '';
  throw new BrandError(
    key,
    `${color} has a contrast of ${formatRatio(ratio)} on the ${scheme} scheme's card (${CARD[scheme]}), where links and buttons are written in it; WCAG AA asks for at least ${AA_TEXT}:1${advice}`,
  );
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** An SVG document: its root element after an optional XML declaration, comments and doctype. */
const SVG_START = /^\uFEFF?\s*(<\?xml[^>]*\?>\s*)?((<!--[\s\S]*?-->|<!DOCTYPE[^>]*>)\s*)*<svg[\s>/]/i;

/** The logo, read once and checked to be what its name says; the message names the file. */
function readLogo(given: string): BrandLogo {
  const file = path.resolve(given);
  const fail = (why: string) => new BrandError('BRAND_LOGO', why);
  const ext = path.extname(file).toLowerCase();
  if (ext !== '.svg' && ext !== '.png') throw fail(`${file} is not an .svg or .png file`);
  let body: Buffer;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw fail(`${file} is not a file`);
    if (stat.size > MAX_LOGO_BYTES) throw fail(`${file} is ${stat.size} bytes; a logo may be at most ${MAX_LOGO_BYTES} (1 MiB)`);
    body = fs.readFileSync(file);
  } catch (err) {
    if (err instanceof BrandError) throw err;
    throw fail(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (ext === '.png') {
    if (!body.subarray(0, 8).equals(PNG_SIGNATURE)) throw fail(`${file} is not a PNG image`);
    return { file, type: 'png', body };
  }
  if (body.includes(0) || !SVG_START.test(body.toString('utf8', 0, Math.min(body.length, 64 * 1024)))) {
    throw fail(`${file} is not an SVG image (expected an <svg> element, uncompressed)`);
  }
  return { file, type: 'svg', body };
}
