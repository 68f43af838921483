/**
 * Counts the SQL statements a process sends, by kind (select, insert, update,
 * delete…) and table: a kysely log hook that changes no query. Used by the
 * benchmarks (`npm run bench`) to report database round trips per sign-in and
 * per refresh, a figure that does not depend on the machine's noise.
 *
 * Loaded into a provider only by the benchmarks (count-statements.ts, see
 * docs/benchmarks.md).
 *
 * kysely's `log` hook sees every statement it executes once (query builders
 * and `sql` templates alike), failed ones included. Not a plugin: a plugin's
 * `transformQuery` also runs for each subquery and union branch as it is
 * built, which would count one statement several times. Transaction control
 * (BEGIN/COMMIT, sent by kysely's driver directly) is not seen; no sign-in or
 * token request opens a transaction today.
 */
import type { LogEvent, RootOperationNode } from 'kysely';

export type StatementKind = 'select' | 'insert' | 'update' | 'delete' | 'merge' | 'other';

export interface StatementCounts {
  total: number;
  /** select statements. */
  reads: number;
  /** insert, update, delete, merge (an INSERT … ON CONFLICT … RETURNING is a write). */
  writes: number;
  byKind: Record<StatementKind, number>;
  /** `kind table` → count, e.g. `select oidc_payloads`. */
  byStatement: Record<string, number>;
}

const WRITE_KINDS: ReadonlySet<StatementKind> = new Set(['insert', 'update', 'delete', 'merge']);

function emptyKinds(): Record<StatementKind, number> {
  return { select: 0, insert: 0, update: 0, delete: 0, merge: 0, other: 0 };
}

type Node = { kind?: string } & Record<string, unknown>;

/** The first table named under `node` (depth-first), or undefined. */
function firstTable(node: unknown, depth = 0): string | undefined {
  if (!node || typeof node !== 'object' || depth > 8) return undefined;
  const n = node as Node;
  if (n.kind === 'TableNode') {
    const identifier = (n.table as { identifier?: { name?: string } } | undefined)?.identifier;
    return identifier?.name;
  }
  if (Array.isArray(node)) {
    for (const child of node) {
      const found = firstTable(child, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  for (const key of ['froms', 'from', 'into', 'table', 'node']) {
    const found = firstTable(n[key], depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** Kind and table of one statement. */
export function classify(node: RootOperationNode): { kind: StatementKind; table: string } {
  const n = node as unknown as Node;
  switch (node.kind) {
    case 'SelectQueryNode':
      return { kind: 'select', table: firstTable(n.from) ?? '-' };
    case 'InsertQueryNode':
      return { kind: 'insert', table: firstTable(n.into) ?? '-' };
    case 'UpdateQueryNode':
      return { kind: 'update', table: firstTable(n.table) ?? '-' };
    case 'DeleteQueryNode':
      return { kind: 'delete', table: firstTable(n.from) ?? '-' };
    case 'MergeQueryNode':
      return { kind: 'merge', table: firstTable(n.into) ?? '-' };
    case 'RawNode': {
      // A `sql` template: judge by its text.
      const text = (n.sqlFragments as readonly string[]).join('?').trim().toLowerCase();
      const verb = /^(with\b[\s\S]*?\)\s*)?(select|insert|update|delete|merge)\b/.exec(text)?.[2] as StatementKind | undefined;
      // Else the first table of a query builder embedded in the template.
      const table = /\b(?:from|into|update)\s+([a-z_][a-z0-9_]*)/.exec(text)?.[1] ?? firstTable(n.parameters) ?? '-';
      return { kind: verb ?? 'other', table };
    }
    default:
      return { kind: 'other', table: node.kind };
  }
}

export class StatementCounter {
  #byKind = emptyKinds();
  #byStatement = new Map<string, number>();
  #total = 0;

  /** kysely's `log` option: called once per executed statement, after it succeeded or failed. */
  readonly log = (event: LogEvent): void => {
    const { kind, table } = classify(event.query.query);
    this.#total += 1;
    this.#byKind[kind] += 1;
    const key = `${kind} ${table}`;
    this.#byStatement.set(key, (this.#byStatement.get(key) ?? 0) + 1);
  };

  /** The counts since the start or the last reset. */
  snapshot(): StatementCounts {
    const byKind = { ...this.#byKind };
    let writes = 0;
    for (const [kind, n] of Object.entries(byKind)) if (WRITE_KINDS.has(kind as StatementKind)) writes += n;
    return {
      total: this.#total,
      reads: byKind.select,
      writes,
      byKind,
      byStatement: Object.fromEntries([...this.#byStatement].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))),
    };
  }

  reset(): void {
    this.#byKind = emptyKinds();
    this.#byStatement.clear();
    this.#total = 0;
  }
}

/** Adds up snapshots (several processes of a cluster). */
export function sumCounts(parts: StatementCounts[]): StatementCounts {
  const out: StatementCounts = { total: 0, reads: 0, writes: 0, byKind: emptyKinds(), byStatement: {} };
  for (const p of parts) {
    out.total += p.total;
    out.reads += p.reads;
    out.writes += p.writes;
    for (const [k, v] of Object.entries(p.byKind)) out.byKind[k as StatementKind] += v;
    for (const [k, v] of Object.entries(p.byStatement)) out.byStatement[k] = (out.byStatement[k] ?? 0) + v;
  }
  return out;
}
