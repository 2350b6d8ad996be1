/**
 * Parses an HTTP Retry-After header: delta seconds ("120") or an HTTP date
 * ("Wed, 21 Oct 2026 07:28:00 GMT"). Returns whole seconds from `now`, never negative,
 * or undefined when the header is absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.ceil(Number(text));
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}
