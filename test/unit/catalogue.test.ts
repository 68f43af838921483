/**
 * The message catalogue: every shipped language has every key with the same
 * parameters, every key the code and the views name exists, messages render
 * safely as HTML and as text, the language is picked as OIDC says, and a
 * theme's messages are checked. Pages rendered in the pseudo-language:
 * test/e2e/languages.test.ts.
 */
import { describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { BUILT_IN_FACTORS } from '../../factors/registry.ts';
import { BUILT_IN_LANGUAGES, Catalogue, CatalogueError, PSEUDO_LANGUAGE } from '../../src/i18n/catalogue.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

function fullCatalogue(options: ConstructorParameters<typeof Catalogue>[0] = {}): Catalogue {
  const catalogue = new Catalogue(options);
  for (const f of BUILT_IN_FACTORS) if (f.messagesDir) catalogue.addFactor(f.id, Catalogue.readFolder(f.messagesDir), f.messagesDir);
  return catalogue;
}

function files(dir: string, ext: string[]): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => ext.some((e) => f.endsWith(e)) && !f.includes('node_modules'))
    .map((f) => path.join(dir, f));
}

describe('the shipped languages', () => {
  const catalogue = fullCatalogue();
  const english = catalogue.keys('en');

  test.each(BUILT_IN_LANGUAGES.filter((l) => l !== 'en'))('%s has every English key, no other, with the same parameters', (language) => {
    const keys = catalogue.keys(language);
    expect(english.filter((k) => !keys.includes(k))).toEqual([]);
    expect(keys.filter((k) => !english.includes(k))).toEqual([]);
    const mismatched = english.filter((k) => JSON.stringify(catalogue.paramsOf(language, k)) !== JSON.stringify(catalogue.paramsOf('en', k)));
    expect(mismatched).toEqual([]);
  });

  test('every built-in factor ships English and German messages, its label among them', () => {
    for (const factor of BUILT_IN_FACTORS) {
      expect(factor.messagesDir).toBeDefined();
      for (const language of BUILT_IN_LANGUAGES) expect(catalogue.has(language, `${factor.id}.label`)).toBe(true);
    }
  });

  test('every key the code and the views name is in the English catalogue', () => {
    const sources = [
      ...files(path.join(ROOT, 'src'), ['.ts', '.hbs']),
      ...files(path.join(ROOT, 'interactions'), ['.ts', '.hbs']),
      ...files(path.join(ROOT, 'factors'), ['.ts', '.hbs']),
    ];
    const named = new Set<string>();
    const patterns = [/\{\{t\s+"([a-z][\w-]*(?:\.[\w-]+)+)"/g, /\bt\(\s*'([a-z][\w-]*(?:\.[\w-]+)+)'/g, /\bkey:\s*'([a-z][\w-]*(?:\.[\w-]+)+)'/g];
    for (const file of sources) {
      const text = fs.readFileSync(file, 'utf8');
      for (const pattern of patterns) for (const m of text.matchAll(pattern)) named.add(m[1]!);
    }
    expect(named.size).toBeGreaterThan(0);
    expect([...named].filter((k) => !catalogue.has('en', k)).sort()).toEqual([]);
  });
});

describe('rendering a message', () => {
  const catalogue = new Catalogue();

  test('as HTML: parameters and text escaped, the allowed tags as markup', () => {
    expect(catalogue.html('en', 'layout.continueTo', { app: '<script>"x"</script>' })).toBe(
      'to continue to <strong>&#60;script&#62;&#34;x&#34;&#60;/script&#62;</strong>',
    );
  });

  test('as text: the tags keep only their content, nothing is escaped', () => {
    expect(catalogue.text('de', 'layout.continueTo', { app: 'A & B' })).toBe('weiter zu A & B');
  });

  test('a select with a `none` branch takes it for a parameter not given or empty, never for a value', () => {
    expect(catalogue.text('en', 'common.cancel', { app: undefined })).toBe('Cancel and return to the app');
    expect(catalogue.text('en', 'common.cancel', { app: '' })).toBe('Cancel and return to the app');
    expect(catalogue.html('de', 'common.cancel', { app: 'none' })).toBe('Abbrechen und zurück zu none');
    expect(catalogue.html('en', 'common.cancel', { app: 'A & B' })).toBe('Cancel and return to A &#38; B');
    expect(new Catalogue({ pseudo: true }).text(PSEUDO_LANGUAGE, 'common.cancel', {})).toBe('⟦Çáñçéĺ áñð ŕéţúŕñ ţó ţĥé áþþ⟧');
    const themed = new Catalogue();
    themed.addOverrides('en', { 'common.cancel': '{app, select, none {Back} other {Back to {app}}}' }, 'en.json');
    expect(themed.text('en', 'common.cancel', {})).toBe('Back');
    expect(themed.text('en', 'common.cancel', { app: 'Shop' })).toBe('Back to Shop');
  });

  test('a parameter the caller leaves out renders as nothing, not as an error', () => {
    expect(catalogue.html('en', 'layout.continueTo', {})).toBe('to continue to <strong></strong>');
    expect(catalogue.text('de', 'failure.locked', { unit: 'minutes' })).toMatch(/^Zu viele Versuche\./);
  });

  test('a key no catalogue has renders as the key, not as an error', () => {
    expect(catalogue.text('en', 'nowhere.to.be.found')).toBe('nowhere.to.be.found');
  });

  test('a language without the key falls back to the default language, then English', () => {
    const withFrench = new Catalogue({ defaultLanguage: 'de' });
    withFrench.addOverrides('fr', { 'input.refused.title': 'Requête refusée' }, 'fr.json');
    expect(withFrench.text('fr', 'input.refused.title')).toBe('Requête refusée');
    expect(withFrench.text('fr', 'input.tooLarge.message')).toBe(new Catalogue().text('de', 'input.tooLarge.message'));
  });
});

describe('picking the language', () => {
  const catalogue = new Catalogue();
  const header = (value: string) => (languages: string[]) => {
    const wanted = value.split(',').map((v) => v.split(';')[0]!.trim());
    return wanted.find((w) => languages.includes(w)) ?? false;
  };

  test('ui_locales first, in its order, a region falling back to its language', () => {
    expect(catalogue.negotiate('fr-CA de-AT en', header('en'))).toBe('de');
    expect(catalogue.negotiate('en', header('de'))).toBe('en');
  });

  test('then Accept-Language, then the default', () => {
    expect(catalogue.negotiate(undefined, header('fr, de;q=0.8'))).toBe('de');
    expect(catalogue.negotiate('fr', header('fr'))).toBe('en');
    expect(new Catalogue({ defaultLanguage: 'de' }).negotiate(undefined, header('fr'))).toBe('de');
  });

  test('the pseudo-language only when asked for by name and switched on', () => {
    expect(catalogue.negotiate(PSEUDO_LANGUAGE, header('en'))).toBe('en');
    expect(new Catalogue({ pseudo: true }).negotiate(PSEUDO_LANGUAGE, header('en'))).toBe(PSEUDO_LANGUAGE);
  });
});

describe('the pseudo-language', () => {
  test('marks every letter of the text and keeps parameters and tags', () => {
    const catalogue = new Catalogue({ pseudo: true });
    const html = catalogue.html(PSEUDO_LANGUAGE, 'layout.continueTo', { app: 'Shop' });
    expect(html).toBe('⟦ţó çóñţíñúé ţó <strong>Shop</strong>⟧');
    expect(html.replace(/<[^>]+>|Shop/g, '')).not.toMatch(/[A-Za-z]/);
  });
});

describe("a theme's messages", () => {
  const refusal = (language: string, messages: Record<string, string>) => {
    try {
      new Catalogue().addOverrides(language, messages, 'theme/messages/x.json');
    } catch (err) {
      expect(err).toBeInstanceOf(CatalogueError);
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  test('replace a text, or add a language', () => {
    const catalogue = new Catalogue();
    catalogue.addOverrides('en', { 'input.refused.title': 'Not accepted' }, 'en.json');
    catalogue.addOverrides('fr', { 'layout.continueTo': 'pour continuer vers <b>{app}</b>' }, 'fr.json');
    expect(catalogue.text('en', 'input.refused.title')).toBe('Not accepted');
    expect(catalogue.html('fr', 'layout.continueTo', { app: 'X' })).toBe('pour continuer vers <b>X</b>');
    expect(catalogue.languages()).toEqual(['en', 'de', 'fr']);
  });

  test('a key that does not exist, a parameter the message is not given, a broken message or a foreign tag stop the start', () => {
    expect(refusal('en', { 'input.refused.titel': 'x' })).toMatch(/input\.refused\.titel is not a message key/);
    expect(refusal('en', { 'layout.continueTo': 'to {application}' })).toMatch(/uses \{application\}/);
    expect(refusal('en', { 'layout.continueTo': 'to {app' })).toMatch(/layout\.continueTo/);
    expect(refusal('en', { 'layout.continueTo': '<script>{app}</script>' })).toMatch(/<script> is not one of the tags/);
    expect(refusal('english', { 'layout.continueTo': '{app}' })).toMatch(/not a language tag/);
    expect(refusal('en', { 'layout.continueTo': 'to {code}' })).toMatch(/\{code\} has the name of a tag/);
  });
});
