/**
 * Removes secrets from any text before it reaches a log, an error, a ledger row, telemetry or a file:
 * SAS signatures and whole SAS query strings, bearer tokens, account keys and JWTs.
 */

const REDACTED = '[REDACTED]';

const patterns: Array<[RegExp, string]> = [
  // A URL's whole query string when it carries a SAS (sig=, or the usual SAS fields).
  [/(\bhttps?:\/\/[^\s"'<>?#]+)\?[^\s"'<>#]*(?:sig|sv|se|skoid|sp)=[^\s"'<>#]*/gi, `$1?${REDACTED}`],
  // A bare SAS token (as in a manifest's sasToken), with or without a leading '?'.
  [
    /\??\b(?:[a-z]{1,6}=[^\s&"'<>]*&)*(?:[a-z]{1,6}=[^\s&"'<>]*&)*sig=[^\s&"'<>]*(?:&[a-z]{1,6}=[^\s&"'<>]*)*/gi,
    REDACTED,
  ],
  // Authorization headers and bearer tokens.
  [/\b(Bearer|SharedKey)\s+[A-Za-z0-9._~+/:=-]+/g, `$1 ${REDACTED}`],
  [/\bBasic\s+[A-Za-z0-9+/]{12,}={0,2}/g, `Basic ${REDACTED}`],
  // Account keys and SAS in connection strings.
  [/\b(AccountKey|SharedAccessSignature|SharedAccessKey|InstrumentationKey)=[^;\s"']+/gi, `$1=${REDACTED}`],
  // JSON fields that hold secrets.
  [/("(?:sasToken|access_token|token|authorization|accountKey)"\s*:\s*")[^"]*"/gi, `$1${REDACTED}"`],
  // Anything that looks like a JWT.
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, REDACTED],
];

export function redact(text: string): string {
  let out = text;
  for (const [pattern, replacement] of patterns) out = out.replace(pattern, replacement);
  return out;
}

/** A URL for logs and ledgers: scheme, host and path only. */
export function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return redact(url);
  }
}
