/** WEBAUTHN_* configuration: defaults from ISSUER, and what browsers would refuse later refused at start. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { loadConfig } from '../../src/config.ts';

const KEY = 'a'.repeat(64);
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'webauthn');
const load = (env: Record<string, string>) => loadConfig({ SECRET_KEY: KEY, ...env }).webauthn;
const refused = (env: Record<string, string>) => {
  try {
    load(env);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('accepted');
};

describe('WebAuthn configuration', () => {
  test('defaults: the issuer’s host and origin, no attestation, any authenticator', () => {
    expect(load({ PORT: '3000' })).toEqual({ rpId: 'localhost', origins: ['http://localhost:3000'], attestation: 'none', aaguids: [], attestationRoots: [] });
    expect(load({ ISSUER: 'https://id.example.com' })).toMatchObject({ rpId: 'id.example.com', origins: ['https://id.example.com'] });
  });

  test('a registrable suffix as RP ID, and more origins under it (comma-separated, or a list in a config file)', () => {
    expect(
      load({ ISSUER: 'https://id.example.com', WEBAUTHN_RP_ID: 'Example.COM', WEBAUTHN_ORIGINS: 'https://id.example.com, https://app.example.com' }),
    ).toMatchObject({
      rpId: 'example.com',
      origins: ['https://id.example.com', 'https://app.example.com'],
    });
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-cfg-')), 'twofold.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        ISSUER: 'https://id.example.com',
        WEBAUTHN_RP_ID: 'example.com',
        WEBAUTHN_ORIGINS: ['https://id.example.com', 'https://shop.example.com'],
      }),
    );
    expect(load({ TWOFOLD_CONFIG: file })).toMatchObject({ origins: ['https://id.example.com', 'https://shop.example.com'] });
  });

  test('refused at start, naming the key: an RP ID the issuer is not under, origins elsewhere or without TLS, the issuer’s origin left out', () => {
    expect(refused({ ISSUER: 'https://id.example.com', WEBAUTHN_RP_ID: 'example.org' })).toMatch(
      /^Invalid configuration: WEBAUTHN_RP_ID: must be the issuer's host or a registrable suffix/,
    );
    expect(refused({ ISSUER: 'https://id.example.com', WEBAUTHN_RP_ID: 'https://example.com' })).toMatch(/^Invalid configuration: WEBAUTHN_RP_ID: a host name/);
    expect(refused({ ISSUER: 'https://id.example.com', WEBAUTHN_ORIGINS: 'https://id.example.com,https://evil.test' })).toMatch(
      /WEBAUTHN_ORIGINS: https:\/\/evil.test is not on id.example.com/,
    );
    expect(
      refused({ ISSUER: 'https://id.example.com', WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://id.example.com,http://app.example.com' }),
    ).toMatch(/must be https/);
    expect(refused({ ISSUER: 'https://id.example.com', WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://app.example.com' })).toMatch(
      /must include the issuer's origin https:\/\/id.example.com/,
    );
    expect(refused({ ISSUER: 'https://id.example.com', WEBAUTHN_ORIGINS: 'https://id.example.com/login' })).toMatch(/^Invalid configuration: WEBAUTHN_ORIGINS/);
    expect(refused({ ISSUER: 'http://10.0.0.1:3000', WEBAUTHN_RP_ID: '10.0.0.1' })).toMatch(/not an IP address/);
  });

  test('attestation required needs trust anchors; an AAGUID list needs attestation', () => {
    expect(refused({ WEBAUTHN_ATTESTATION: 'required' })).toMatch(/WEBAUTHN_ATTESTATION_ROOTS: required with WEBAUTHN_ATTESTATION=required/);
    expect(refused({ WEBAUTHN_AAGUIDS: 'cb69481e-8ff7-4039-93ec-0a2729a154a8' })).toMatch(/WEBAUTHN_AAGUIDS: needs WEBAUTHN_ATTESTATION=required/);
    expect(refused({ WEBAUTHN_AAGUIDS: 'not-an-aaguid' })).toMatch(/^Invalid configuration: WEBAUTHN_AAGUIDS/);
    expect(refused({ WEBAUTHN_ATTESTATION: 'required', WEBAUTHN_ATTESTATION_ROOTS: '/nonexistent.pem' })).toMatch(/cannot read \/nonexistent.pem \(ENOENT\)/);
    const config = load({
      WEBAUTHN_ATTESTATION: 'required',
      WEBAUTHN_ATTESTATION_ROOTS: path.join(FIXTURES, 'attestation-root.pem'),
      WEBAUTHN_AAGUIDS: 'CB69481E-8FF7-4039-93EC-0A2729A154A8',
    });
    expect(config.attestation).toBe('required');
    expect(config.attestationRoots).toHaveLength(1);
    expect(config.aaguids).toEqual(['cb69481e-8ff7-4039-93ec-0a2729a154a8']);
  });

  test('an issuer on an IP address still starts (WebAuthn cannot work there; the README says so)', () => {
    expect(load({ ISSUER: 'http://127.0.0.1:3000' })).toMatchObject({ rpId: '127.0.0.1' });
  });
});
