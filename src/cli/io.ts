/** What a CLI command may do with the outside world: write text, read the piped-in secret. */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** Standard input, read in full by the entry point when a command asks for --password-stdin. */
  stdin?: string;
}

/** A user-caused failure: printed as one line, exit code 1. */
export class CliError extends Error {}

/** Ends the run with this exit code; whatever needed saying was already written. */
export class CliExit extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`exit ${code}`);
    this.code = code;
  }
}

/**
 * A column's header: upper snake case whatever the row's key looks like
 * (`factorId` and `factor_id` both print FACTOR_ID), so every table reads alike.
 */
export function columnHeader(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

export function printTable(io: CliIO, rows: Array<Record<string, unknown>>, columns: string[]): void {
  if (rows.length === 0) {
    io.out('(none)\n');
    return;
  }
  const cell = (v: unknown) => (v instanceof Date ? v.toISOString() : v === null || v === undefined ? '' : Array.isArray(v) ? v.join(',') : String(v));
  const headers = columns.map(columnHeader);
  const widths = columns.map((c, i) => Math.max(headers[i]!.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd() + '\n';
  io.out(line(headers));
  for (const row of rows) io.out(line(columns.map((c) => cell(row[c]))));
}

/**
 * One record as `key  value` lines (the `show` commands). An absent value
 * (null, undefined, an empty list) prints `-`, never `undefined` or a blank.
 */
export function printFields(io: CliIO, record: Record<string, unknown>, options: { join: string }): void {
  const width = Math.max(...Object.keys(record).map((k) => k.length)) + 2;
  for (const [key, v] of Object.entries(record)) {
    const text =
      v === null || v === undefined || (Array.isArray(v) && v.length === 0)
        ? '-'
        : v instanceof Date
          ? v.toISOString()
          : Array.isArray(v)
            ? v.join(options.join)
            : typeof v === 'object'
              ? JSON.stringify(v)
              : String(v);
    io.out(`${key.padEnd(width)}${text}\n`);
  }
}

export function printJson(io: CliIO, value: unknown): void {
  io.out(JSON.stringify(value, null, 2) + '\n');
}

/** The first line of the piped-in secret, without its line ending. */
export function secretFromStdin(io: CliIO, what: string): string {
  const value = io.stdin?.split(/\r?\n/)[0] ?? '';
  if (!value) throw new CliError(`no ${what} on standard input (pipe it in, e.g. \`printf '%s' "$PASSWORD" | twofold …\`)`);
  return value;
}
