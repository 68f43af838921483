/**
 * The way back to the app from a sign-in that expired or was opened in another
 * browser. Only addresses registered for the app that started the sign-in are
 * offered (its initiate_login_uri, else the origin of its first web redirect
 * URI), never one taken from the request, so the link cannot be an open
 * redirect. Unknown app: no link, and the page says so.
 */
import type { ClientMetadata } from 'oidc-provider';
import type { Services } from '../src/services.ts';
import { interactionClientId } from '../src/oidc/adapter.ts';
import { findClientById } from '../src/oidc/clients.ts';

export interface WayBack {
  href: string;
  clientName: string;
}

/** Where the app starts again: its registered initiate_login_uri, else its first http(s) redirect URI's origin. */
export function startAgainUri(metadata: Pick<ClientMetadata, 'initiate_login_uri' | 'redirect_uris'>): string | undefined {
  if (typeof metadata.initiate_login_uri === 'string') return metadata.initiate_login_uri;
  for (const uri of metadata.redirect_uris ?? []) {
    const url = parsed(uri);
    // A native app's custom scheme has no page to go back to.
    if (url && (url.protocol === 'https:' || url.protocol === 'http:')) return `${url.origin}/`;
  }
  return undefined;
}

function parsed(uri: string): URL | undefined {
  try {
    return new URL(uri);
  } catch {
    return undefined;
  }
}

export async function wayBack(services: Pick<Services, 'db' | 'codeHasher'>, uid: string | undefined): Promise<WayBack | undefined> {
  // The library's interaction ids are short base64url strings; anything else names no sign-in.
  if (!uid || !/^[\w-]{1,64}$/.test(uid)) return undefined;
  const clientId = await interactionClientId(services.db, services.codeHasher, uid);
  const client = clientId ? await findClientById(services.db, clientId) : undefined;
  const href = client && startAgainUri(client.metadata);
  return client && href ? { href, clientName: client.name } : undefined;
}
