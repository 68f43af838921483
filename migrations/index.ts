/**
 * Every migration, by name. Names are zero-padded numbers so they sort and
 * never collide; kysely refuses to run an older name after a newer one.
 * Adding a migration is one file plus one line here.
 */
import type { Migration } from 'kysely/migration';
import * as m0001 from './0001_initial.ts';
import * as m0002 from './0002_factors.ts';
import * as m0003 from './0003_policy.ts';
import * as m0004 from './0004_webauthn.ts';
import * as m0005 from './0005_challenge_codes.ts';
import * as m0006 from './0006_trusted_device_factor.ts';
import * as m0007 from './0007_hashed_payload_ids.ts';
import * as m0009 from './0009_session_activity.ts';
import * as m0010 from './0010_resource_servers.ts';
import * as m0011 from './0011_key_publication.ts';
import * as m0012 from './0012_backchannel_logouts.ts';
import * as m0013 from './0013_consents.ts';
import * as m0014 from './0014_account_center.ts';
import * as m0015 from './0015_password_resets.ts';
import * as m0016 from './0016_factor_answers.ts';
import * as m0017 from './0017_sign_ups.ts';

export const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_factors': m0002,
  '0003_policy': m0003,
  '0004_webauthn': m0004,
  '0005_challenge_codes': m0005,
  '0006_trusted_device_factor': m0006,
  '0007_hashed_payload_ids': m0007,
  '0009_session_activity': m0009,
  '0010_resource_servers': m0010,
  '0011_key_publication': m0011,
  '0012_backchannel_logouts': m0012,
  '0013_consents': m0013,
  '0014_account_center': m0014,
  '0015_password_resets': m0015,
  '0016_factor_answers': m0016,
  '0017_sign_ups': m0017,
};
