import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { conversionTotalsDifferences, normalizeDecimal, totalsDifferences } from '../../../src/curation/totals';

describe('curation totals', () => {
  it('compare decimal strings by value, whatever their scale', () => {
    assert.equal(normalizeDecimal('1234.567800000000000000'), '1234.5678');
    assert.equal(normalizeDecimal('-0.000000000000'), '0');
    assert.equal(normalizeDecimal('007.10'), '7.1');
    assert.equal(normalizeDecimal('-12'), '-12');
    assert.deepEqual(totalsDifferences('curated', { USD: { Subtotal: '10.50' } }, { USD: { Subtotal: '10.5' } }), []);
  });

  it('report a difference in the last digit, a missing currency and an extra measure', () => {
    assert.deepEqual(
      conversionTotalsDifferences({
        raw: { USD: { Subtotal: '10.000000000001', TaxTotal: '1', Total: '11.000000000001' }, EUR: { Subtotal: '3' } },
        curated: { USD: { Subtotal: '10', TaxTotal: '1', Total: '11.000000000001' } },
        focus: { USD: { Subtotal: '10.000000000001', TaxTotal: '1', Other: '2' }, EUR: { Subtotal: '3' } },
      }),
      [
        'curated EUR Subtotal: raw 3, written 0',
        'curated USD Subtotal: raw 10.000000000001, written 10',
        'focus USD Other: not in the raw rows, written 2',
      ],
    );
  });
});
