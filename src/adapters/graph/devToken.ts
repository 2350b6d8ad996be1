/**
 * The development tokens of emulator mode (SPEC section 3), like Azurite's well-known key: not secrets, and
 * accepted only by the partner billing emulator.
 */

/** The `iss` claim of the tokens the emulator issues: it accepts no other unsigned token. */
export const EMULATOR_TOKEN_ISSUER = 'https://127.0.0.1/csp-unbilled-export-emulator/';

/** The Microsoft Graph application permission the partner billing API requires. */
export const PARTNER_BILLING_ROLE = 'PartnerBilling.Read.All';

/** The claims of an emulator development token (a subset of what Microsoft Entra ID puts in an app-only token). */
export interface EmulatorTokenClaims {
  /** Application permissions granted with admin consent (Entra ID's `roles` claim). */
  roles: string[];
  /** Default: the Graph resource. */
  aud?: string;
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/**
 * An emulator development token: a JWT shaped like Entra ID's app-only access tokens (so that `doctor` reads its
 * `roles` claim the same way as a real one) but unsigned (`alg: none`). Deterministic: the same claims give the
 * same token. `roles: []` gives a token the emulator authenticates but refuses with 403, as Graph does for an app
 * without the permission.
 */
export function emulatorDevToken(claims: EmulatorTokenClaims): string {
  const payload = {
    aud: claims.aud ?? 'https://graph.microsoft.com',
    iss: EMULATOR_TOKEN_ISSUER,
    idtyp: 'app',
    appid: '00000000-0000-0000-0000-00000000e0e0',
    oid: '00000000-0000-0000-0000-00000000e0e1',
    tid: '4d1c3f7a-2b8e-4c61-9f0d-7a5e3b2c1d90',
    roles: claims.roles,
  };
  return `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(payload)}.`;
}

/** The fixed development token for Graph in emulator mode: an app-only token granted PartnerBilling.Read.All. */
export const EMULATOR_DEV_TOKEN = emulatorDevToken({ roles: [PARTNER_BILLING_ROLE] });

/**
 * The fixed development token for the Partner Center API in emulator mode. Distinct from the Graph one, so
 * the emulator can prove that a Graph token never reaches Partner Center and the other way round.
 */
export const EMULATOR_PARTNER_CENTER_DEV_TOKEN = 'csp-unbilled-export-emulator-partner-center-development-token';
