/**
 * The message catalogue: what a person reads, by key, in English and German.
 * It starts with the texts of the input guard (src/http/input-guard.ts); the
 * pages' own texts move here by key as they are translated. German must list
 * every English key (the type says so), so a missing translation does not
 * compile.
 */
import type { Context } from 'koa';

const en = {
  'input.refused.title': 'Request refused',
  'input.refused.message': 'The request contained characters that are not allowed, such as a NUL character or malformed text. Go back and try again without them.',
  'input.tooLarge.message': 'The request was too large. Go back and try again.',
} as const;

export type MessageKey = keyof typeof en;

const de: Record<MessageKey, string> = {
  'input.refused.title': 'Anfrage abgelehnt',
  'input.refused.message': 'Die Anfrage enthielt unzulässige Zeichen, etwa ein NUL-Zeichen oder fehlerhaft kodierten Text. Gehen Sie zurück und versuchen Sie es ohne diese Zeichen erneut.',
  'input.tooLarge.message': 'Die Anfrage war zu groß. Gehen Sie zurück und versuchen Sie es erneut.',
};

export const CATALOGUE = { en, de } as const satisfies Record<string, Record<MessageKey, string>>;

export type Language = keyof typeof CATALOGUE;

export const LANGUAGES = Object.keys(CATALOGUE) as Language[];

export const DEFAULT_LANGUAGE: Language = 'en';

const isLanguage = (tag: string): tag is Language => Object.hasOwn(CATALOGUE, tag);

/** The person's language: the OIDC `ui_locales` of this request first (in order), then Accept-Language, then English. */
export function languageOf(ctx: Context): Language {
  const asked = ctx.query.ui_locales;
  if (typeof asked === 'string') {
    for (const tag of asked.split(' ')) {
      const primary = tag.split('-')[0]!.toLowerCase();
      if (isLanguage(primary)) return primary;
    }
  }
  const accepted = ctx.acceptsLanguages(...LANGUAGES);
  return typeof accepted === 'string' && isLanguage(accepted) ? accepted : DEFAULT_LANGUAGE;
}

export function message(language: Language, key: MessageKey): string {
  return CATALOGUE[language][key];
}
