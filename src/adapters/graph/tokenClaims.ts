/**
 * Reads the payload of a JWT access token (Microsoft Entra ID's, or the emulator's development token) without
 * verifying it: enough to tell which identity a credential signed in as and which application permissions
 * (`roles`) it carries. The token itself is never returned, logged or kept.
 */
export interface AccessTokenClaims {
  /** Application permissions (app-only tokens). */
  roles: string[];
  /** Delegated scopes (user tokens, e.g. from `az login`), space-separated in the token. */
  scopes: string[];
  /** `app` or `user` (Entra ID's optional `idtyp` claim, else inferred from `scp`). */
  identityType: 'app' | 'user';
  audience: string | undefined;
  issuer: string | undefined;
  tenantId: string | undefined;
  /** The application (client) id. */
  appId: string | undefined;
  /** The object id of the service principal or user. */
  objectId: string | undefined;
  /** The signed-in user's name (user tokens). */
  userName: string | undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The claims of a JWT, or undefined when the token is not one (an opaque token). */
export function readAccessTokenClaims(token: string): AccessTokenClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return undefined;
  const claims = payload as Record<string, unknown>;
  const roles = Array.isArray(claims['roles'])
    ? claims['roles'].filter((role): role is string => typeof role === 'string')
    : [];
  const scopes = (text(claims['scp']) ?? '').split(' ').filter((scope) => scope !== '');
  const idtyp = text(claims['idtyp']);
  return {
    roles,
    scopes,
    identityType: idtyp === 'app' || idtyp === 'user' ? idtyp : scopes.length > 0 ? 'user' : 'app',
    audience: text(claims['aud']),
    issuer: text(claims['iss']),
    tenantId: text(claims['tid']),
    appId: text(claims['appid']) ?? text(claims['azp']),
    objectId: text(claims['oid']),
    userName: text(claims['upn']) ?? text(claims['preferred_username']) ?? text(claims['unique_name']),
  };
}
