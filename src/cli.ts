/**
 * `twofold …`: the administrator's command (see cli/main.ts). With PostgreSQL
 * it opens the database itself. With PGlite only one process may open the
 * data folder, so when the provider is running the command is sent to it over
 * the admin socket; otherwise the CLI opens the folder itself (holding its lock).
 *
 * The rest is imported after LOG_LEVEL is settled: the logger reads it once.
 */
process.env.LOG_LEVEL ||= 'warn';

const { main } = await import('./cli/main.ts');

/** Exits once everything written has reached its pipe. */
function exit(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2), { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) }).then(exit, (err: unknown) => {
  process.stderr.write(`twofold: internal error: ${(err as Error)?.message ?? String(err)}\n`);
  exit(1);
});
