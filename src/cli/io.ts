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

export function printTable(io: CliIO, rows: Array<Record<string, unknown>>, columns: string[]): void {
  if (rows.length === 0) {
    io.out('(none)\n');
    return;
  }
  const cell = (v: unknown) => (v instanceof Date ? v.toISOString() : v === null || v === undefined ? '' : Array.isArray(v) ? v.join(',') : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd() + '\n';
  io.out(line(columns.map((c) => c.toUpperCase())));
  for (const row of rows) io.out(line(columns.map((c) => cell(row[c]))));
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
