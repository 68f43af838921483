/**
 * A scripted browser for flows that need no JavaScript: real HTTP requests with
 * a cookie jar, following the provider's redirects one hop at a time.
 */
export interface Hop {
  status: number;
  location?: string;
  body: string;
  url: string;
  headers: Headers;
}

export class UserAgent {
  readonly cookies = new Map<string, string>();
  /** `headers`: sent with every request (a browser's Accept-Language). */
  constructor(
    readonly origin: string,
    readonly headers: Record<string, string> = {},
  ) {}

  #cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  #store(headers: Headers): void {
    for (const line of headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = /expires=Thu, 01 Jan 1970/i.test(line) || /max-age=0/i.test(line);
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Hop> {
    const absolute = new URL(url, this.origin).toString();
    const headers: Record<string, string> = { accept: 'text/html', ...this.headers, ...init.headers };
    if (this.cookies.size && absolute.startsWith(this.origin)) headers.cookie = this.#cookieHeader();
    let body: string | undefined;
    if (init.form) {
      body = new URLSearchParams(init.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin ??= this.origin;
    }
    const res = await fetch(absolute, { method: init.method ?? (init.form ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    if (absolute.startsWith(this.origin)) this.#store(res.headers);
    const location = res.headers.get('location') ?? undefined;
    return {
      status: res.status,
      location: location ? new URL(location, absolute).toString() : undefined,
      body: await res.text(),
      url: absolute,
      headers: res.headers,
    };
  }

  /** Follows redirects while they stay on the provider; returns the last hop (a page, or a redirect away). */
  async follow(url: string): Promise<Hop> {
    let hop = await this.request(url);
    for (let i = 0; i < 10 && hop.location && hop.location.startsWith(this.origin); i++) hop = await this.request(hop.location);
    return hop;
  }

  async submit(url: string, form: Record<string, string>): Promise<Hop> {
    const hop = await this.request(url, { form });
    if (hop.location && hop.location.startsWith(this.origin)) return this.follow(hop.location);
    return hop;
  }
}

/** The action of the first form on a page. */
export function formAction(html: string): string {
  const m = /<form[^>]*action="([^"]+)"/.exec(html);
  if (!m) throw new Error(`no form on page:\n${html.slice(0, 500)}`);
  return m[1]!.replace(/&amp;/g, '&');
}
