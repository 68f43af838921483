/**
 * `twofold policy get|set|history|explain`: policy documents (global or per
 * group), versioned, validated before they are stored; and "why", printing the
 * decision for a user and an app with each rule and where it came from.
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import YAML from 'yaml';
import { findGroup } from '../../accounts/groups.ts';
import { findClientRow } from '../../oidc/clients.ts';
import { globalPolicySchema, groupPolicySchema, parsePolicy, PolicyDocumentError } from '../../policy/documents.ts';
import { GLOBAL, clientPolicyOf, clientScope, currentPolicy, globalPolicy, groupScope, policyHistory, savePolicy } from '../../policy/store.ts';
import { decide, type TraceEntry } from '../../policy/decide.ts';
import { PASSWORD_EVIDENCE } from '../../policy/levels.ts';
import { applyMaxAge } from '../../policy/max-age.ts';
import { applyIdle } from '../../policy/lapse.ts';
import { epochSeconds } from '../../clock.ts';
import type { Evidence } from '../../../factors/types.ts';
import { policyInput } from '../../mfa/requirement.ts';
import { recordAudit } from '../../security/audit.ts';
import type { Services } from '../../services.ts';
import { CliError, printJson, printTable } from '../io.ts';
import type { CommandContext } from '../command.ts';
import { requireAccount } from './lookup.ts';

/** What the account's most recently updated live session proved (session_evidence), and when it was last used, if it has one. */
async function latestSessionEvidence(services: Services, accountId: string): Promise<{ evidence: Evidence[]; lastActiveAt?: number } | undefined> {
  const row = await services.db
    .selectFrom('session_evidence')
    .select(['evidence', 'last_active_at'])
    .where('account_id', '=', accountId)
    .where('expires_at', '>', new Date())
    .orderBy('updated_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!row) return undefined;
  return { evidence: row.evidence as Evidence[], ...(row.last_active_at ? { lastActiveAt: Math.floor(row.last_active_at.getTime() / 1000) } : {}) };
}

async function scopeFor(services: Services, group: string | undefined): Promise<{ scope: string; label: string }> {
  if (!group) return { scope: GLOBAL, label: 'global policy' };
  const g = await findGroup(services.db, group);
  if (!g) throw new CliError(`no group named ${group}`);
  return { scope: groupScope(g.id), label: `group ${g.name} policy` };
}

function readDocument(file: string, stdin: string | undefined): unknown {
  let text: string;
  try {
    // `-`: the entry point read standard input (the command may run inside the provider's process).
    text = file === '-' ? (stdin ?? '') : fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return YAML.parse(text) as unknown; // YAML is a superset of JSON
  } catch (err) {
    throw new CliError(`${file} is neither YAML nor JSON: ${(err as Error).message.split('\n')[0]}`);
  }
}

export function registerPolicy(program: Command, ctx: CommandContext): void {
  const { io, actor } = ctx;
  const policy = program.command('policy').description('MFA policy documents: global and per group');

  policy
    .command('get')
    .option('--group <name>', "a group's policy instead of the global one")
    .option('--json', 'print JSON')
    .action(async (opts: { group?: string; json?: boolean }) => {
      const { services } = ctx;
      const { scope, label } = await scopeFor(services, opts.group);
      let document: unknown;
      let version: number | null;
      if (scope === GLOBAL) {
        const g = await globalPolicy(services.db, services.config.MFA);
        document = g.policy;
        version = g.version;
      } else {
        const row = await currentPolicy(services.db, scope);
        document = row ? parsePolicy(groupPolicySchema, row.document, label) : {};
        version = row?.version ?? null;
      }
      if (opts.json) printJson(io, { scope, version, document });
      else io.out(`# ${label}, ${version === null ? 'defaults (never set)' : `version ${version}`}\n${YAML.stringify(document)}`);
    });

  policy
    .command('set')
    .description('store a new version of a policy document (YAML or JSON)')
    .option('--group <name>', "a group's policy instead of the global one")
    .requiredOption('--file <file>', 'the document; - for standard input')
    .action(async (opts: { group?: string; file: string }) => {
      const { services } = ctx;
      const { scope, label } = await scopeFor(services, opts.group);
      let parsed: Record<string, unknown>;
      try {
        const raw = readDocument(opts.file, io.stdin);
        parsed = (scope === GLOBAL ? parsePolicy(globalPolicySchema, raw, label) : parsePolicy(groupPolicySchema, raw, label)) as Record<string, unknown>;
      } catch (err) {
        if (err instanceof PolicyDocumentError) throw new CliError(err.message);
        throw err;
      }
      // Any factor FACTORS loads, on or off here: the CLI may lack a channel the provider has.
      const known = services.factors.registry.known().map((f) => f.id);
      const unknown = ((parsed.factors as string[] | undefined) ?? []).filter((id) => !known.includes(id));
      if (unknown.length) throw new CliError(`${label}: factors: unknown factor(s) ${unknown.join(', ')} (known: ${known.join(', ')})`);
      const version = await savePolicy(services.db, scope, parsed, actor);
      await recordAudit(services.db, 'policy.changed', { actor }, { scope, version });
      io.out(`${label} is now version ${version}\n`);
    });

  policy
    .command('history')
    .description('every version of a policy document, newest first: who changed what, when')
    .option('--group <name>', "a group's policy instead of the global one")
    .option('--client <name>', "an app's policy (set with client add|update) instead of the global one")
    .option('--json', 'print JSON')
    .action(async (opts: { group?: string; client?: string; json?: boolean }) => {
      const { services } = ctx;
      if (opts.group && opts.client) throw new CliError('--group and --client: one or the other');
      let scope: string;
      if (opts.client) {
        const client = await findClientRow(services.db, opts.client);
        if (!client) throw new CliError(`no client named ${opts.client}`);
        scope = clientScope(client.client_id);
      } else scope = (await scopeFor(services, opts.group)).scope;
      const rows = await policyHistory(services.db, scope);
      if (opts.json) printJson(io, rows);
      else
        printTable(
          io,
          rows.map((r) => ({ ...r, document: JSON.stringify(r.document) })),
          ['version', 'created_at', 'actor', 'document'],
        );
    });

  policy
    .command('explain')
    .description('what a password sign-in of this user to this app needs (or, with --session, what their latest session meets), and which rule decided it')
    .requiredOption('--user <username>', 'the user')
    .requiredOption('--client <name>', 'the app (name or client_id)')
    .option('--acr-values <values>', "acr_values the app sends (space-separated; default: the app's default_acr_values)")
    .option('--max-age <seconds>', 'max_age the app sends: a session authenticated longer ago signs in again')
    .option('--session', "start from the user's most recent live session instead of a fresh password sign-in")
    .option('--json', 'print JSON')
    .action(async (opts: { user: string; client: string; acrValues?: string; maxAge?: string; session?: boolean; json?: boolean }) => {
      const { services } = ctx;
      const account = await requireAccount(services.db, opts.user);
      const client = await findClientRow(services.db, opts.client);
      if (!client) throw new CliError(`no client named ${opts.client}`);
      if (opts.maxAge !== undefined && !/^\d+$/.test(opts.maxAge)) throw new CliError('--max-age: a number of seconds');
      const now = epochSeconds(services.clock);
      const trace: TraceEntry[] = [];

      // Where the sign-in starts: a fresh password, or what the latest session proved.
      let evidence: Evidence[] = [PASSWORD_EVIDENCE(now)];
      // Whether a live session was found: the fallback above is never the session's.
      let fromSession = false;
      if (opts.session) {
        const latest = await latestSessionEvidence(services, account.id);
        if (latest) {
          // The idle limits, as the provider's `mfa` check applies them to a session before the policy.
          const idle = applyIdle(latest.evidence, (await globalPolicy(services.db, services.config.MFA)).policy.levelIdle, latest.lastActiveAt, now);
          for (const level of idle.lapsed) trace.push({ source: 'global', rule: `level ${level} lapsed: the session was idle longer than levelIdle allows` });
          evidence = idle.evidence;
          fromSession = true;
        } else trace.push({ source: 'session', rule: 'no live session: a fresh password sign-in' });
      }
      // max_age and the app's maximum authentication age, as the provider applies them before the policy: the shorter wins.
      const requestMaxAge = opts.maxAge === undefined ? undefined : Number(opts.maxAge);
      const clientMaxAge = clientPolicyOf(client.policy, client.name).maxAuthAge;
      const limit = [requestMaxAge, clientMaxAge].filter((v): v is number => v !== undefined);
      const maxAge = limit.length ? Math.min(...limit) : undefined;
      const aged = applyMaxAge(evidence, maxAge, now);
      if (maxAge !== undefined) {
        const source = requestMaxAge !== undefined && (clientMaxAge === undefined || requestMaxAge <= clientMaxAge) ? 'request' : `client ${client.name}`;
        const what = source === 'request' ? `max_age ${maxAge}` : `maximum authentication age ${maxAge}s (a request cannot loosen it)`;
        trace.push({
          source,
          rule: aged.signInAgain
            ? `${what}: the authentication is ${aged.age}s old, so the user signs in again from the password`
            : `${what}: the authentication is ${aged.age}s old, recent enough; what it proved counts`,
        });
      }

      // acr_values: the request's, else the app's default_acr_values (which the provider applies when a request sends none).
      const defaults = (client.metadata.default_acr_values as string[] | undefined) ?? [];
      const fromRequest = opts.acrValues !== undefined;
      const acrValues = (fromRequest ? opts.acrValues! : defaults.join(' ')).split(' ').filter(Boolean);
      // The same input, and the same function, as the provider's check (a live session: single sign-on) or the sign-in pages.
      const input = await policyInput(services, {
        accountId: account.id,
        clientId: client.client_id,
        request: { acrValues, ...(!fromRequest && acrValues.length ? { acrValuesSource: `client ${client.name} (default_acr_values)` } : {}) },
        evidence: aged.evidence,
        at: fromSession && !aged.signInAgain ? 'session' : 'sign-in',
        now,
      });
      const decided = decide(input);
      const decision = { ...decided, trace: [...trace, ...decided.trace] };
      // What "Skip for now" would give the app, where the step may be skipped.
      const optional = (decided.type === 'enroll' || decided.type === 'step_up') && decided.optional;
      const ifSkipped = optional ? decide({ ...input, skipped: true }) : undefined;
      const skippedTo = ifSkipped?.type === 'satisfied' ? { level: ifSkipped.level, acr: ifSkipped.acr, amr: ifSkipped.amr } : undefined;
      if (opts.json) {
        printJson(io, { user: account.username, client: client.name, decision, ...(skippedTo ? { ifSkipped: skippedTo } : {}) });
        return;
      }
      const skipNote = skippedTo ? `may skip: the app then gets level ${skippedTo.level}, acr ${skippedTo.acr}` : undefined;
      const verdict =
        decision.type === 'satisfied'
          ? `satisfied at level ${decision.level} (acr ${decision.acr}, amr ${decision.amr.join(' ')})`
          : decision.type === 'step_up'
            ? `${decision.enrollAfter ? 'prove a backup code, then enrol a second factor,' : `step up from level ${decision.level} to ${decision.target} with one of:`} ${decision.factors.join(', ')}${skipNote ? ` (${skipNote})` : ''}`
            : decision.type === 'enroll'
              ? `enrol first (${skipNote ?? 'required'}) to reach level ${decision.target}: ${decision.factors.join(', ')}${decision.reminder ? `; deadline ${new Date(decision.reminder.deadline * 1000).toISOString()}` : ''}`
              : `unmet: level ${decision.target} cannot be reached (the app receives unmet_authentication_requirements)`;
      const start = !opts.session
        ? 'a password'
        : !fromSession
          ? 'a password (no live session)'
          : aged.signInAgain
            ? 'a password (their latest session is too old)'
            : 'their latest session';
      io.out(
        `${account.username} signing in to ${client.name} with ${start}:\n  decision: ${verdict}\n  decided by: ${decision.rule}\n  rules (broad to narrow; the strictest wins):\n`,
      );
      for (const t of decision.trace) io.out(`    - [${t.source}] ${t.rule}\n`);
    });
}
