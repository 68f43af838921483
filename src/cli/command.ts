/** What a command's code needs from the program that runs it (src/cli/run.ts builds it). */
import type { Command } from 'commander';
import type { ZodError } from 'zod';
import type { Services } from '../services.ts';
import type { CliIO } from './io.ts';

export interface CommandContext {
  io: CliIO;
  /** Recorded as the actor of audit events. */
  actor: string;
  /** The open services; only inside an action. */
  readonly services: Services;
  /** Migrations applied while opening the services. */
  readonly migrated: string[];
}

/** Checks of a command's options that need no database (see usageCheck). */
const usageChecks = new WeakMap<Command, (cmd: Command) => void>();

/**
 * Declares a check of a command's options that runs before the services open, like commander's own
 * (a required option): it reports with `cmd.error(…)`, one line, exit code 2, and nothing is opened.
 */
export function usageCheck(cmd: Command, check: (cmd: Command) => void): Command {
  usageChecks.set(cmd, check);
  return cmd;
}

/** The usage check declared for a command, if any. */
export function usageCheckOf(cmd: Command): ((cmd: Command) => void) | undefined {
  return usageChecks.get(cmd);
}

/** Option names as the administrator typed them, for validation messages. */
const FIELD_NAMES: Record<string, string> = {
  username: 'username',
  email: '--email',
  displayName: '--name',
  password: 'password',
  redirectUris: '--redirect-uri',
  postLogoutRedirectUris: '--post-logout-redirect-uri',
  initiateLoginUri: '--initiate-login-uri',
  authMethod: '--auth-method',
  jwksUri: '--jwks-uri',
  jwks: '--jwks-file',
  idTokenAlg: '--id-token-alg',
  resourceIndicator: '--resource-server',
  resourceScopes: '--resource-scopes',
  introspectAny: '--introspect-any',
  clientCredentials: '--client-credentials',
  clientCredentialsScopes: '--scope',
  pkce: '--pkce',
  idTokenClaims: '--id-token-claims',
  signUp: '--sign-up',
  backchannelLogoutUri: '--backchannel-logout-uri',
  backchannelLogoutSessionRequired: '--backchannel-logout-session-required',
};

export function describeZodError(err: ZodError): string {
  const issue = err.issues[0]!;
  const field = issue.path
    .filter((p) => typeof p === 'string')
    .map((p) => FIELD_NAMES[p as string] ?? (p as string))
    .join('.');
  return `${field ? field + ': ' : ''}${issue.message}`;
}
