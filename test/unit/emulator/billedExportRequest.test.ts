import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBilledExportRequest, parseInvoiceOnlyExportRequest } from '../../../src/emulator/exportRequest';
import { defaultInvoices, invoiceCollection } from '../../../src/emulator/invoices';
import { DEFAULT_SCENARIO } from '../../../src/emulator/partnerBillingEmulator';

describe('emulator billed export body', () => {
  it('accepts invoiceId with an optional attributeSet (default full)', () => {
    assert.deepEqual(parseBilledExportRequest('application/json', '{"invoiceId":"G016907411"}'), {
      ok: true,
      value: { invoiceId: 'G016907411', attributeSet: 'full' },
    });
    assert.deepEqual(
      parseBilledExportRequest('application/json; charset=utf-8', '{"invoiceId":"G1","attributeSet":"basic"}'),
      { ok: true, value: { invoiceId: 'G1', attributeSet: 'basic' } },
    );
  });

  it('refuses a missing invoiceId, an unbilled parameter, a bad attribute set and a non-JSON body, naming each', () => {
    const cases: Array<[string | undefined, string, RegExp]> = [
      ['application/json', '{}', /'invoiceId' is required/],
      ['application/json', '{"invoiceId":"G1","billingPeriod":"last"}', /'billingPeriod' .* not a valid parameter/],
      ['application/json', '{"invoiceId":"G1","attributeSet":"all"}', /accepted: 'full', 'basic'/],
      ['application/json', '{"invoiceId":42}', /Invalid value for parameter 'invoiceId'/],
      ['text/plain', '{"invoiceId":"G1"}', /send 'application\/json'/],
    ];
    for (const [contentType, body, message] of cases) {
      const parsed = parseBilledExportRequest(contentType, body);
      assert.equal(parsed.ok, false, body);
      if (!parsed.ok) assert.match(parsed.message, message);
    }
  });
});

describe('emulator billed aggregated usage export body', () => {
  it('accepts the invoice id alone and refuses an attributeSet, as Graph defines no such parameter', () => {
    assert.deepEqual(parseInvoiceOnlyExportRequest('application/json', '{"invoiceId":" G000000001 "}'), {
      ok: true,
      value: { invoiceId: 'G000000001' },
    });
    const cases: Array<[string, RegExp]> = [
      ['{"invoiceId":"G1","attributeSet":"full"}', /'attributeSet' in the request payload is not a valid parameter/],
      ['{}', /'invoiceId' is required/],
      ['{"invoiceId":""}', /Invalid value for parameter 'invoiceId'/],
    ];
    for (const [body, message] of cases) {
      const parsed = parseInvoiceOnlyExportRequest('application/json', body);
      assert.equal(parsed.ok, false, body);
      if (!parsed.ok) assert.match(parsed.message, message);
    }
  });
});

describe('emulator invoices', () => {
  it('knows three invoices of the last two months, newest first, deterministically', () => {
    const now = new Date('2026-03-15T10:00:00Z');
    const invoices = defaultInvoices(now);
    assert.deepEqual(
      invoices.map((i) => [i.id, i.currency, i.billingMonth, i.invoiceDate.toISOString()]),
      [
        ['G000000001', 'USD', '202602', '2026-03-01T00:00:00.000Z'],
        ['G000000002', 'EUR', '202602', '2026-03-01T00:00:00.000Z'],
        ['G000000003', 'USD', '202601', '2026-02-01T00:00:00.000Z'],
      ],
    );
    const page = invoiceCollection(invoices, 200, 0) as { items: Array<Record<string, unknown>> };
    assert.equal(page.items[2]?.['billingPeriodStartDate'], '2026-01-01T00:00:00Z');
    assert.equal(page.items[2]?.['billingPeriodEndDate'], '2026-01-31T00:00:00Z');
  });

  it('answers with @odata.type by default (Microsoft SDKs pick the operation type from it)', () => {
    assert.equal(DEFAULT_SCENARIO.odataType, true);
  });
});
