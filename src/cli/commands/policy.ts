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
import { GLOBAL, currentPolicy, globalPolicy, groupScope, policyHistory, savePolicy } from '../../policy/store.ts';
import { decide } from '../../policy/decide.ts';
import { PASSWORD_EVIDENCE } from '../../policy/levels.ts';
import { policyInput } from '../../mfa/requirement.ts';
import { recordAudit } from '../../security/audit.ts';
import type { Services } from '../../services.ts';
import { CliError, printJson, printTable } from '../io.ts';
import type { CommandContext } from '../run.ts';
import { requireAccount } from './lookup.ts';

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
    .option('--group <name>', 'a group\'s policy instead of the global one')
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
    .option('--group <name>', 'a group\'s policy instead of the global one')
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
      const known = services.factors.registry.ids();
      const unknown = ((parsed.factors as string[] | undefined) ?? []).filter((id) => !known.includes(id));
      if (unknown.length) throw new CliError(`${label}: factors: unknown factor(s) ${unknown.join(', ')} (known: ${known.join(', ')})`);
      const version = await savePolicy(services.db, scope, parsed, actor);
      await recordAudit(services.db, 'policy.changed', { actor }, { scope, version });
      io.out(`${label} is now version ${version}\n`);
    });

  policy
    .command('history')
    .option('--group <name>', 'a group\'s policy instead of the global one')
    .option('--json', 'print JSON')
    .action(async (opts: { group?: string; json?: boolean }) => {
      const { services } = ctx;
      const { scope } = await scopeFor(services, opts.group);
      const rows = await policyHistory(services.db, scope);
      if (opts.json) printJson(io, rows);
      else printTable(io, rows.map((r) => ({ ...r, document: JSON.stringify(r.document) })), ['version', 'created_at', 'actor', 'document']);
    });

  policy
    .command('explain')
    .description('what a fresh password sign-in of this user to this app needs, and which rule decided it')
    .requiredOption('--user <username>', 'the user')
    .requiredOption('--client <name>', 'the app (name or client_id)')
    .option('--acr-values <values>', 'acr_values the app sends (space-separated)')
    .option('--max-age <seconds>', 'max_age the app sends')
    .option('--json', 'print JSON')
    .action(async (opts: { user: string; client: string; acrValues?: string; maxAge?: string; json?: boolean }) => {
      const { services } = ctx;
      const account = await requireAccount(services.db, opts.user);
      const client = await findClientRow(services.db, opts.client);
      if (!client) throw new CliError(`no client named ${opts.client}`);
      if (opts.maxAge !== undefined && !/^\d+$/.test(opts.maxAge)) throw new CliError('--max-age: a number of seconds');
      const input = await policyInput(services, {
        accountId: account.id,
        clientId: client.client_id,
        request: { acrValues: (opts.acrValues ?? (client.metadata.default_acr_values as string[] | undefined)?.join(' ') ?? '').split(' ').filter(Boolean) },
        evidence: [PASSWORD_EVIDENCE(Math.floor(Date.now() / 1000))],
      });
      const decision = decide(input);
      const notes: string[] = [];
      if (opts.maxAge !== undefined) notes.push(`max_age ${opts.maxAge}: a session older than ${opts.maxAge}s signs in again from the password`);
      const maxAuthAge = (client.policy as { maxAuthAge?: number }).maxAuthAge;
      if (maxAuthAge !== undefined) notes.push(`client ${client.name}: sessions older than ${maxAuthAge}s sign in again (a request cannot loosen this)`);
      if (opts.json) {
        printJson(io, { user: account.username, client: client.name, decision, notes });
        return;
      }
      const verdict =
        decision.type === 'satisfied'
          ? `satisfied at level ${decision.level} (acr ${decision.acr}, amr ${decision.amr.join(' ')})`
          : decision.type === 'step_up'
            ? `step up from level ${decision.level} to ${decision.target} with one of: ${decision.factors.join(', ')}`
            : decision.type === 'enroll'
              ? `enrol first (${decision.optional ? 'may skip' : 'required'}) to reach level ${decision.target}: ${decision.factors.join(', ')}${decision.reminder ? `; deadline ${new Date(decision.reminder.deadline * 1000).toISOString()}` : ''}`
              : `unmet: level ${decision.target} cannot be reached (the app receives unmet_authentication_requirements)`;
      io.out(`${account.username} signing in to ${client.name} with a password:\n  decision: ${verdict}\n  decided by: ${decision.rule}\n  rules (broad to narrow; the strictest wins):\n`);
      for (const t of decision.trace) io.out(`    - [${t.source}] ${t.rule}\n`);
      for (const n of notes) io.out(`  note: ${n}\n`);
    });
}
