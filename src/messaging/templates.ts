/**
 * The messages that carry a code: Handlebars templates, an email's subject,
 * text and HTML parts, a text message and what a voice call reads out. The
 * built-in ones live in ./templates and take their words from the message
 * catalogue (`{{t "email.code.subject" issuer=issuerName}}`), in the language
 * of the person signing in; an operator overrides any of them by putting a
 * file of the same name in MESSAGE_TEMPLATES_DIR (their wording, their brand),
 * with `{{t}}` too, or plain text in one language. HTML is escaped; the other
 * parts are plain text.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import { Catalogue, type Params } from '../i18n/catalogue.ts';

export const TEMPLATES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'templates');

/** Every template a deployment may override, by file name. */
export const TEMPLATE_FILES = ['code-email.subject.hbs', 'code-email.text.hbs', 'code-email.html.hbs', 'code-sms.hbs', 'code-voice.hbs'] as const;
type TemplateFile = (typeof TEMPLATE_FILES)[number];

export interface CodeMessageData {
  /** The language the message is written in (`lang` of the HTML part). */
  lang: string;
  code: string;
  /** The code's digits separated by spaces, for a voice to read one by one. */
  spokenCode: string;
  minutes: number;
  purpose: 'sign-in' | 'enroll';
  enroll: boolean;
  /** The product name (BRAND_NAME). */
  issuerName: string;
  /** The issuer's host name, for origin-bound codes in text messages (`@host #code`). */
  host: string;
  issuer: string;
}

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

export class MessageTemplates {
  readonly #templates = new Map<TemplateFile, Handlebars.TemplateDelegate>();

  /**
   * Tries every override at start (compiled and rendered once), so a broken one stops the start
   * instead of a sign-in. The built-in ones are tested; they compile on first use (Handlebars'
   * first compile costs a tenth of a second of start-up).
   */
  constructor(overrideDir?: string, catalogue = new Catalogue()) {
    // While an override is tried, a message it does not give every parameter stops the start (later it would render them empty).
    let trying = false;
    // {{t "key" name=value}}: the message in the data's `lang`; escaped in the HTML part only.
    const withT = (html: boolean) => {
      const hbs = Handlebars.create();
      hbs.registerHelper('t', (key: unknown, options: Handlebars.HelperOptions) => {
        const lang = (options.data?.root as { lang?: string } | undefined)?.lang ?? catalogue.defaultLanguage;
        const params = options.hash as Params;
        const missing = trying ? catalogue.missingParams(lang, String(key), params) : [];
        if (missing.length) throw new Error(`${String(key)} is not given {${missing.join('}, {')}}`);
        return html ? new Handlebars.SafeString(catalogue.html(lang, String(key), params)) : catalogue.text(lang, String(key), params);
      });
      return hbs;
    };
    const [htmlHbs, textHbs] = [withT(true), withT(false)];
    for (const file of TEMPLATE_FILES) {
      const override = overrideDir ? path.join(overrideDir, file) : undefined;
      const overridden = override !== undefined && fs.existsSync(override);
      const source = overridden ? override : path.join(TEMPLATES_DIR, file);
      const text = fs.readFileSync(source, 'utf8');
      try {
        // Only the HTML part is escaped; a subject or a text message is not markup.
        const html = file.endsWith('.html.hbs');
        const template = (html ? htmlHbs : textHbs).compile(text, { strict: false, noEscape: !html });
        if (overridden) {
          trying = true;
          try {
            template(SAMPLE);
          } finally {
            trying = false;
          }
        }
        this.#templates.set(file, template);
      } catch (err) {
        throw new Error(`message template ${source}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }

  #render(file: TemplateFile, data: CodeMessageData): string {
    return this.#templates.get(file)!(data);
  }

  email(data: CodeMessageData): RenderedEmail {
    return {
      // A subject is one line, whatever a template does.
      subject: this.#render('code-email.subject.hbs', data).replace(/\s+/g, ' ').trim(),
      text: this.#render('code-email.text.hbs', data),
      html: this.#render('code-email.html.hbs', data),
    };
  }

  sms(data: CodeMessageData): string {
    return this.#render('code-sms.hbs', data).trim();
  }

  voice(data: CodeMessageData): string {
    return this.#render('code-voice.hbs', data).replace(/\s+/g, ' ').trim();
  }
}

const SAMPLE: CodeMessageData = {
  lang: 'en',
  code: '123456',
  spokenCode: '1 2 3 4 5 6',
  minutes: 10,
  purpose: 'sign-in',
  enroll: false,
  issuerName: 'Twofold',
  host: 'localhost',
  issuer: 'http://localhost:3000',
};
