/**
 * docs/configuration.md is generated from the configuration schema
 * (scripts/config-docs.ts); this fails when the committed file is stale, and
 * proves the generator reads the schema: every key has a row with its
 * metadata, and the redaction of secrets follows the same `secret` marks.
 */
import fs from 'node:fs';
import { describe, expect, test } from '@jest/globals';
import { CONFIG_DOCS_COMMAND, CONFIG_DOCS_PATH, renderConfigDocs } from '../../scripts/config-docs.ts';
import { ConfigError, configSchema, loadConfig, settingMeta } from '../../src/config.ts';

describe('docs/configuration.md', () => {
  test('matches what the schema generates', () => {
    const expected = renderConfigDocs();
    const actual = fs.readFileSync(CONFIG_DOCS_PATH, 'utf8');
    if (actual !== expected) {
      const at = [...expected].findIndex((ch, i) => actual[i] !== ch);
      const line = expected.slice(0, at === -1 ? actual.length : at).split('\n').length;
      throw new Error(`docs/configuration.md is stale (first difference on line ${line}): run \`${CONFIG_DOCS_COMMAND}\` and commit the result`);
    }
  });

  test('has one row per setting, with its description, range and default from the schema', () => {
    const text = renderConfigDocs();
    for (const [key, schema] of Object.entries(configSchema.shape)) {
      const rows = text.split('\n').filter((l) => l.startsWith(`| \`${key}\` |`));
      expect(rows).toHaveLength(1);
      expect(settingMeta(schema).description).toBeTruthy();
    }
    expect(text).toMatch(/^\| `PORT` \| `3000` \| integer, 1–65535 \| TCP port/m);
    expect(text).toMatch(/^\| `REFRESH_TOKEN_TTL` \| `1209600` \(14 days\) \| seconds, 300 s–365 days \|/m);
    expect(text).toMatch(/^\| `LOG_LEVEL` \| `info` \| `fatal`, `error`, `warn`, `info`, `debug`, `trace`, `silent` \|/m);
    // A default computed on this machine (the core count) is described, not printed.
    expect(text).toMatch(/^\| `HASH_CONCURRENCY` \| the number of CPU cores \|/m);
  });

  test('the settings marked secret are the ones an error never echoes', () => {
    const secrets = Object.entries(configSchema.shape).flatMap(([key, schema]) => (settingMeta(schema).secret ? [key] : []));
    expect(secrets.sort()).toEqual(['DATABASE_URL', 'FACTOR_SETTINGS', 'METRICS_TOKEN', 'SECRET_KEY', 'SMS_WEBHOOK_SECRET', 'SMTP_URL']);
    for (const key of secrets) {
      expect(renderConfigDocs()).toMatch(new RegExp(`^\\| \`${key}\` \\|.*\\*\\*Secret\\*\\*`, 'm'));
      let message = '';
      try {
        loadConfig({ [key]: 'x s3cr3t-value' });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        message = (err as Error).message;
      }
      expect(message).toMatch(new RegExp(`^Invalid configuration: ${key}: .*\\(got "…"\\)$`));
      expect(message).not.toContain('s3cr3t');
    }
  });
});
