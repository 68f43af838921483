import type { Command } from 'commander';
import { migrateToLatest } from '../../db/migrate.ts';
import type { CommandContext } from '../run.ts';

export function registerMigrate(program: Command, ctx: CommandContext): void {
  program
    .command('migrate')
    .description('apply pending database migrations')
    .action(async () => {
      const { applied } = await migrateToLatest(ctx.services.db);
      ctx.io.out(applied.length ? `applied ${applied.join(', ')}\n` : 'the database is up to date\n');
    });
}
