import { type ErrorCode, ExportError } from '../../errors';
import { redact } from '../../redact';

/** The settings that give the app a token, said once for every credential error. */
export const CREDENTIAL_SETTINGS_HINT =
  'In Azure the function app uses its managed identity (AZURE_CLIENT_ID names a user-assigned one); elsewhere set ' +
  'AZURE_TENANT_ID (the partner tenant), AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH of ' +
  'an app registration in the partner tenant. Locally, leave GRAPH_BASE_URL unset to use the partner billing emulator. ' +
  'See docs/errors.md#graph_credential.';

/**
 * What an @azure/identity failure means. `CredentialUnavailableError` (and DefaultAzureCredential's aggregate of
 * them) says no credential is configured here: retrying cannot help. An `AuthenticationError` is a token endpoint
 * that answered: with 429/5xx or no answer at all (network, endpoint resolution) it may pass; with an OAuth error
 * (AADSTS…: wrong tenant, unknown app, expired secret) it is configuration too.
 */
export function isTransientCredentialFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'AggregateAuthenticationError') {
    const inner = (error as { errors?: unknown }).errors;
    return Array.isArray(inner) && inner.some((e) => isTransientCredentialFailure(e));
  }
  if (error.name !== 'AuthenticationError') return false;
  const status = (error as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number' && (status === 429 || status >= 500)) return true;
  return NETWORK_MARKERS.test(error.message);
}

/** How MSAL and Node say that a token endpoint did not answer. */
const NETWORK_MARKERS =
  /network_error|endpoints_resolution_error|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|socket hang up|timed out/i;

/** Each failure of a credential (DefaultAzureCredential tries several) on one line, short. */
function summary(error: unknown): string {
  const inner = (error as { errors?: unknown } | null)?.errors;
  const errors: unknown[] = Array.isArray(inner) && inner.length > 0 ? inner : [error];
  return errors
    .map((e) => {
      const line = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
      return redact(line.length > 240 ? `${line.slice(0, 240)}…` : line);
    })
    .join('; ');
}

/**
 * A failure to get a token for `service`, as an ExportError: `codes.config` (terminal) when no credential is set up
 * or the token endpoint refused it, naming the settings that would fix it; `codes.transient` (retried) when the
 * token endpoint could not be reached or was unavailable.
 */
export function credentialError(
  error: unknown,
  service: string,
  codes: { config: ErrorCode; transient: ErrorCode },
): ExportError {
  const detail = summary(error);
  if (isTransientCredentialFailure(error)) {
    return new ExportError(
      codes.transient,
      `Could not get a token for ${service}: the token endpoint (Microsoft Entra ID, login.microsoftonline.com, or AZURE_AUTHORITY_HOST) did not answer or was unavailable: ${detail}. Retried; if it persists, check outbound access to login.microsoftonline.com.`,
      { retryable: true, cause: error },
    );
  }
  return new ExportError(
    codes.config,
    `No token for ${service} could be had: no credential is configured or it was refused (${detail}). ${CREDENTIAL_SETTINGS_HINT}`,
    { cause: error },
  );
}
