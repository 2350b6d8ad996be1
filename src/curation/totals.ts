/**
 * Exact decimal totals of a conversion and their check (pure). Amounts travel as decimal strings, never as
 * JavaScript numbers.
 */

/** Currency → measure (a raw money column, e.g. `BillingPreTaxTotal`, `Subtotal`) → exact decimal sum. */
export type CurrencyTotals = Record<string, Record<string, string>>;

/** A decimal string in its shortest form: no trailing fractional zeros, no `-0`, `0` for zero. */
export function normalizeDecimal(value: string): string {
  let text = value.trim();
  let negative = false;
  if (text.startsWith('-')) {
    negative = true;
    text = text.slice(1);
  } else if (text.startsWith('+')) text = text.slice(1);
  let [whole = '0', fraction = ''] = text.split('.');
  whole = whole.replace(/^0+(?=\d)/, '');
  fraction = fraction.replace(/0+$/, '');
  const body = fraction === '' ? whole : `${whole}.${fraction}`;
  return negative && body !== '0' ? `-${body}` : body;
}

/**
 * Every difference between two sets of totals, as readable lines (empty: they agree exactly). Only the measures of
 * `expected` are compared; a currency or measure missing on the other side is a difference unless its sum is 0.
 */
export function totalsDifferences(label: string, expected: CurrencyTotals, actual: CurrencyTotals): string[] {
  const differences: string[] = [];
  const currencies = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  for (const currency of [...currencies].sort()) {
    const want = expected[currency] ?? {};
    const got = actual[currency] ?? {};
    for (const measure of Object.keys(want).sort()) {
      const a = normalizeDecimal(want[measure] ?? '0');
      const b = normalizeDecimal(got[measure] ?? '0');
      if (a !== b) differences.push(`${label} ${currency || '(no currency)'} ${measure}: raw ${a}, written ${b}`);
    }
    for (const measure of Object.keys(got).sort()) {
      if (!(measure in want) && normalizeDecimal(got[measure] ?? '0') !== '0') {
        differences.push(
          `${label} ${currency || '(no currency)'} ${measure}: not in the raw rows, written ${got[measure]}`,
        );
      }
    }
  }
  return differences;
}

/**
 * The check the caller must make after a conversion: the curated and FOCUS totals equal the raw ones exactly.
 * (Total is not restated by FOCUS: Subtotal and TaxTotal are, as charge and Tax rows.)
 */
export function conversionTotalsDifferences(totals: {
  raw: CurrencyTotals;
  curated: CurrencyTotals;
  focus: CurrencyTotals;
}): string[] {
  const focusMeasures: CurrencyTotals = {};
  for (const [currency, measures] of Object.entries(totals.raw)) {
    focusMeasures[currency] = Object.fromEntries(Object.entries(measures).filter(([measure]) => measure !== 'Total'));
  }
  return [
    ...totalsDifferences('curated', totals.raw, totals.curated),
    ...totalsDifferences('focus', focusMeasures, totals.focus),
  ];
}
