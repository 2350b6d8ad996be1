import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExportRequest } from '../../../src/emulator/exportRequest';

describe('export request parser', () => {
  it('accepts the documented body, upper-cases the currency and defaults attributeSet to full', () => {
    assert.deepEqual(parseExportRequest('application/json', '{"currencyCode":"usd","billingPeriod":"last"}'), {
      ok: true,
      value: { currencyCode: 'USD', billingPeriod: 'last', attributeSet: 'full' },
    });
    assert.deepEqual(
      parseExportRequest(
        'application/json; charset=utf-8',
        '{"currencyCode":"EUR","billingPeriod":"current","attributeSet":"basic"}',
      ),
      { ok: true, value: { currencyCode: 'EUR', billingPeriod: 'current', attributeSet: 'basic' } },
    );
  });

  it('rejects what Graph rejects, naming the parameter', () => {
    const cases: Array<[string | undefined, string, RegExp]> = [
      [undefined, '{}', /Content-Type/],
      ['text/json', '{}', /Content-Type/],
      ['application/json', 'not json', /JSON/],
      ['application/json', 'null', /object/],
      ['application/json', '{"billingPeriod":"current"}', /currencyCode/],
      ['application/json', '{"currencyCode":"EURO","billingPeriod":"current"}', /currencyCode/],
      ['application/json', '{"currencyCode":"EUR"}', /billingPeriod/],
      ['application/json', '{"currencyCode":"EUR","billingPeriod":"unknownFutureValue"}', /billingPeriod/],
      ['application/json', '{"currencyCode":"EUR","billingPeriod":"Current"}', /billingPeriod/],
      ['application/json', '{"currencyCode":"EUR","billingPeriod":"last","attributeSet":"Full"}', /attributeSet/],
      ['application/json', '{"CurrencyCode":"EUR","billingPeriod":"last"}', /CurrencyCode/],
    ];
    for (const [contentType, body, mentions] of cases) {
      const result = parseExportRequest(contentType, body);
      assert.equal(result.ok, false, body);
      if (!result.ok) assert.match(result.message, mentions, body);
    }
  });
});
