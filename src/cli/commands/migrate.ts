import type { Command } from 'commander';
import { migrateToLatest } from '../../db/migrate.ts';
import type { CommandContext } from '../command.ts';

export function registerMigrate(program: Command, ctx: CommandContext): void {
  program
    .command('migrate')
    .description('apply pending database migrations')
    .action(async () => {
      // The CLI may already have migrated while opening the database.
      const applied = [...ctx.migrated, ...(await migrateToLatest(ctx.services.db)).applied];
      ctx.io.out(applied.length ? `applied ${applied.join(', ')}\n` : 'the database is up to date\n');
    });
}
