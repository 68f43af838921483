/**
 * An administrator's view of the factors: which ones run (`twofold factors`),
 * and a user's credentials: list, import one made elsewhere (migration from
 * another system, through the factor's importCredential), rename, remove,
 * reset. Every change is audited with the admin as actor. Nothing here names
 * a factor: what a factor takes comes from the factor.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { recordAudit } from '../../security/audit.ts';
import { CliError, printJson, printTable, secretFromStdin } from '../io.ts';
import type { CommandContext } from '../command.ts';
import { requireAccount } from './lookup.ts';
import { checkRemoval, removeCredential } from '../../mfa/removal.ts';
import { importCredential } from '../../mfa/import-credential.ts';

/** `name=value` arguments, as a factor's import input. */
function fieldsOf(args: string[]): Record<string, string> {
  const input: Record<string, string> = {};
  for (const arg of args) {
    const at = arg.indexOf('=');
    if (at < 1) throw new CliError(`${JSON.stringify(arg)}: give each field as name=value`);
    const name = arg.slice(0, at);
    if (Object.hasOwn(input, name)) throw new CliError(`${name} is given twice`);
    input[name] = arg.slice(at + 1);
  }
  return input;
}

/** `twofold factors`: the factors FACTORS loaded, on or off (and why), their settings (secrets redacted), what they import. */
export function registerFactorList(program: Command, ctx: CommandContext): void {
  program
    .command('factors')
    .description('list the factors FACTORS loads: on or off (and why), their settings (secret ones redacted), and what `user factor import` takes for each')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const { registry } = ctx.services.factors;
      const off = new Map(registry.off().map((r) => [r.factor.id, r.reason]));
      const rows = registry.known().map((f) => ({
        id: f.id,
        on: !off.has(f.id),
        ...(off.has(f.id) ? { reason: off.get(f.id) } : {}),
        settings: registry.shownSettings(f.id),
        ...(f.importCredential ? { import: f.importCredential.fields } : {}),
      }));
      if (opts.json) return printJson(ctx.io, rows);
      if (!rows.length) return ctx.io.out('(none: FACTORS lists no factor)\n');
      for (const row of rows) {
        ctx.io.out(`${row.id}  ${row.on ? 'on' : `off: ${row.reason}`}\n`);
        ctx.io.out(`  settings  ${JSON.stringify(row.settings)}\n`);
        if (row.import) {
          const fields = Object.entries(row.import).map(
            ([name, f]) => `${name}${f.required ? ' (required)' : ''}${f.secret ? ' (secret: --secret-stdin)' : ''}: ${f.description}`,
          );
          ctx.io.out(`  import    ${fields.join('\n            ')}\n`);
        }
      }
    });
}

export function registerFactors(user: Command, ctx: CommandContext): void {
  const { io, actor } = ctx;
  // Services open only when a command runs (help needs no database).
  const deps = () => ({ db: ctx.services.db, factors: ctx.services.factors });

  user
    .command('factors <username>')
    .description("list a user's second factors")
    .option('--json', 'print JSON')

    .action(async (username: string, opts: { json?: boolean }) => {
      const { db, factors } = deps();
      const account = await requireAccount(db, username);
      const rows = await factors.store.summaries(account.id);
      if (opts.json) printJson(io, rows);
      else printTable(io, rows as unknown as Array<Record<string, unknown>>, ['id', 'factorId', 'label', 'createdAt', 'lastUsedAt', 'remaining']);
    });

  user
    .command('reset-factors <username>')
    .description('remove every second factor of a user who is locked out (they enrol again at the next sign-in if policy requires)')

    .action(async (username: string) => {
      const { db, factors } = deps();
      const account = await requireAccount(db, username);
      const n = await factors.resetAll(account.id, { actor });
      io.out(`removed ${n} factor credential(s) of ${account.username}\n`);
    });

  const factor = user.command('factor').description('change one credential');
  factor
    .command('rename <username> <credential-id> <label>')

    .action(async (username: string, credentialId: string, label: string) => {
      const { db, factors } = deps();
      const account = await requireAccount(db, username);
      const clean = z.string().trim().min(1).max(64).parse(label);
      if (!(await factors.store.rename(account.id, credentialId, clean))) throw new CliError(`${account.username} has no credential ${credentialId}`);
      await recordAudit(db, 'factor.renamed', { accountId: account.id, actor }, { credential: credentialId, label: clean });
      io.out(`renamed ${credentialId} to ${clean}\n`);
    });
  factor
    .command('remove <username> <credential-id>')
    .description(
      'remove one credential; refused when the policy needs it and the user has no other factor that reaches the level (enrol another first); the last factor takes the backup codes with it',
    )
    .option('--force', 'remove it anyway (audited); the user enrols again at the next sign-in')
    .action(async (username: string, credentialId: string, opts: { force?: boolean }) => {
      const { db, factors } = deps();
      const account = await requireAccount(db, username);
      if (!(await factors.store.list(account.id)).some((c) => c.id === credentialId))
        throw new CliError(`${account.username} has no credential ${credentialId}`);
      const verdict = await checkRemoval(ctx.services, account.id, [credentialId]);
      if (!verdict.ok && !opts.force) throw new CliError(`refused: ${verdict.reason}; enrol another factor first, or pass --force`);
      const { removed, recovery } = await removeCredential(ctx.services, account.id, credentialId, { actor });
      if (!removed) throw new CliError(`${account.username} has no credential ${credentialId}`);
      if (!verdict.ok) await recordAudit(db, 'factor.removal_forced', { accountId: account.id, actor }, { credential: credentialId, reason: verdict.reason });
      io.out(`removed ${credentialId}${verdict.ok ? '' : ' (forced: ' + verdict.reason + ')'}\n`);
      if (recovery.length) io.out(`removed the backup codes too (${recovery.join(', ')}): they are never an account's only factor\n`);
    });

  factor
    .command('import <username> <factor-id> [fields...]')
    .description('bring over a credential made elsewhere (migration), fields given as name=value; `twofold factors` lists what each factor takes')
    .option('--label <label>', "a name for it (default: the factor's name)")
    .option('--secret-stdin', "read the factor's secret field from standard input, keeping it out of the process list and the shell's history")
    .option('--json', 'print JSON')
    .action(async (username: string, factorId: string, args: string[], opts: { label?: string; secretStdin?: boolean; json?: boolean }) => {
      const { db, factors } = deps();
      const account = await requireAccount(db, username);
      const input = fieldsOf(args);
      if (opts.secretStdin) {
        const importer = factors.registry.getKnown(factorId)?.factor.importCredential;
        const secret = importer && Object.entries(importer.fields).find(([, f]) => f.secret)?.[0];
        if (!secret) throw new CliError(`--secret-stdin: factor ${factorId} imports no secret field`);
        if (Object.hasOwn(input, secret)) throw new CliError(`--secret-stdin: ${secret} is given on the command line too`);
        input[secret] = secretFromStdin(io, secret);
      }
      const label = opts.label === undefined ? undefined : z.string().trim().min(1).max(64).parse(opts.label);
      const imported = await importCredential(ctx.services, factorId, account, input, label, { actor });
      if (!imported.ok) throw new CliError(imported.problem);
      if (opts.json) printJson(io, { id: imported.credentialId, factor: factorId, label: imported.label });
      else io.out(`imported ${factorId} credential ${imported.credentialId} (${imported.label}) for ${account.username}\n`);
    });
}
