/**
 * The brand on the pages: what the layout shows (`brand.name`, `brand.logo`,
 * `brand.stylesheet`) and the files behind it, served from this origin so the
 * pages' CSP (img-src and style-src 'self', no inline styles) still holds. The
 * colours become a small stylesheet of the variables twofold.css reads, linked
 * after it; a theme's theme.css comes later and wins.
 */
import type { Brand, SchemeColors } from '../src/brand/brand.ts';
import { DEFAULT_BRAND_NAME } from '../src/brand/brand.ts';
import { assetVersion } from '../src/http/assets.ts';

/** What every page gets as `brand`: the name, and URLs carrying the file's hash (a changed file is fetched again). */
export interface PageBrand {
  name: string;
  logo?: string;
  stylesheet?: string;
}

export const DEFAULT_PAGE_BRAND: PageBrand = { name: DEFAULT_BRAND_NAME };

export const BRAND_STYLESHEET = 'brand.css';
/** The logo's served name, before its extension. */
export const BRAND_LOGO_ASSET = 'brand-logo';

/** The page brand and the files to serve under /assets/, by name. */
export function brandPages(brand: Brand): { page: PageBrand; assets: Record<string, Buffer> } {
  const page: PageBrand = { name: brand.name };
  const assets: Record<string, Buffer> = {};
  if (brand.logo) {
    const name = `${BRAND_LOGO_ASSET}.${brand.logo.type}`;
    assets[name] = brand.logo.body;
    page.logo = `/assets/${name}?${assetVersion(brand.logo.body)}`;
  }
  if (brand.colors) {
    const css = Buffer.from(brandStylesheet(brand.colors));
    assets[BRAND_STYLESHEET] = css;
    page.stylesheet = `/assets/${BRAND_STYLESHEET}?${assetVersion(css)}`;
  }
  return { page, assets };
}

/** The colour variables for both schemes; the dark ones last, so they win under prefers-color-scheme: dark. */
export function brandStylesheet(colors: Record<'light' | 'dark', SchemeColors>): string {
  const vars = ({ accent, onAccent }: SchemeColors) => `--accent: ${accent}; --on-accent: ${onAccent};`;
  return [
    '/* BRAND_COLOR and BRAND_COLOR_DARK, checked at start for WCAG AA on the card and under button text. */',
    `:root { ${vars(colors.light)} }`,
    `@media (prefers-color-scheme: dark) { :root { ${vars(colors.dark)} } }`,
    '',
  ].join('\n');
}
