/**
 * An administrator's view of a user's second factors: list, import an existing
 * TOTP secret (migration from another system), rename, remove, reset. Every
 * change is audited with the admin as actor.
 */
import type { Command } from 'commander';
import { Secret } from 'otpauth';
import { z } from 'zod';
import { recordAudit } from '../../security/audit.ts';
import { CliError, printJson, printTable } from '../io.ts';
import type { CommandContext } from '../command.ts';
import { requireAccount } from './lookup.ts';
import { checkRemoval, removeCredential } from '../../mfa/removal.ts';

const base32 = z
  .string()
  .transform((s) => s.replace(/[\s-]/g, '').toUpperCase().replace(/=+$/, ''))
  .refine((s) => /^[A-Z2-7]{16,128}$/.test(s), 'a base32 secret of at least 80 bits (16 characters)');

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
    .description("remove every second factor of a user who is locked out (they enrol again at the next sign-in if policy requires)")
    
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
    .description('remove one credential; refused when the policy needs it and the user has no other factor that reaches the level (enrol another first); the last factor takes the backup codes with it')
    .option('--force', 'remove it anyway (audited); the user enrols again at the next sign-in')
    .action(async (username: string, credentialId: string, opts: { force?: boolean }) => {
      const { db, factors } = deps();
      const account = await requireAccount(db, username);
      if (!(await factors.store.list(account.id)).some((c) => c.id === credentialId)) throw new CliError(`${account.username} has no credential ${credentialId}`);
      const verdict = await checkRemoval(ctx.services, account.id, [credentialId]);
      if (!verdict.ok && !opts.force) throw new CliError(`refused: ${verdict.reason}; enrol another factor first, or pass --force`);
      const { removed, recovery } = await removeCredential(ctx.services, account.id, credentialId, { actor });
      if (!removed) throw new CliError(`${account.username} has no credential ${credentialId}`);
      if (!verdict.ok) await recordAudit(db, 'factor.removal_forced', { accountId: account.id, actor }, { credential: credentialId, reason: verdict.reason });
      io.out(`removed ${credentialId}${verdict.ok ? '' : ' (forced: ' + verdict.reason + ')'}\n`);
      if (recovery.length) io.out(`removed the backup codes too (${recovery.join(', ')}): they are never an account's only factor\n`);
    });

  user
    .command('totp')
    .description('TOTP authenticators')
    .command('import <username>')
    .description('bring over an existing authenticator from another system')
    .requiredOption('--secret <base32>', 'the shared secret, base32')
    .option('--label <label>', 'a name for it', 'Imported authenticator')
    .option('--algorithm <alg>', 'SHA1, SHA256 or SHA512', 'SHA1')
    .option('--digits <n>', '6 or 8', '6')
    .option('--period <seconds>', 'time step', '30')
    .option('--json', 'print JSON')
    
    .action(async (username: string, opts: { secret: string; label: string; algorithm: string; digits: string; period: string; json?: boolean }) => {
      const { db, factors } = deps();
      const account = await requireAccount(db, username);
      const secret = base32.parse(opts.secret);
      Secret.fromBase32(secret); // throws on characters otpauth cannot decode
      const data = z
        .object({ algorithm: z.enum(['SHA1', 'SHA256', 'SHA512']), digits: z.coerce.number().pipe(z.union([z.literal(6), z.literal(8)])), period: z.coerce.number().int().min(15).max(120) })
        .parse({ algorithm: opts.algorithm.toUpperCase(), digits: opts.digits, period: opts.period });
      const label = z.string().trim().min(1).max(64).parse(opts.label);
      const id = await factors.store.insert(account.id, 'totp', { label, secret, data, counter: null });
      await recordAudit(db, 'factor.imported', { accountId: account.id, actor }, { factor: 'totp', credential: id, label });
      if (opts.json) printJson(io, { id, factor: 'totp', label });
      else io.out(`imported TOTP authenticator ${id} (${label}) for ${account.username}\n`);
    });
}
