/** Runs `twofold` commands in-process against open services, capturing what they print. */
import { runCli } from '../../src/cli/run.ts';
import type { Services } from '../../src/services.ts';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

export function cliRunner(services: () => Services, actor = 'admin:test'): (...argv: string[]) => Promise<CliResult> {
  return async (...argv) => {
    let out = '';
    let err = '';
    const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) }, services(), actor);
    return { code, out, err };
  };
}
