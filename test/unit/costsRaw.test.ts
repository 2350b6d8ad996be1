import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COSTS_RAW_COLUMNS, COSTS_RAW_SOURCE, checkAgainstCostsRaw } from '../../src/curation/finopsHub/costsRaw';

describe('the pinned Costs_raw column list of a FinOps hub', () => {
  it('names the finops-toolkit file, the commit it was read at and the MIT licence', () => {
    assert.equal(COSTS_RAW_SOURCE['repository'], 'https://github.com/microsoft/finops-toolkit');
    assert.equal(COSTS_RAW_SOURCE['commit'], '04d370f322f6052b02893ba567c3b75195a19f99');
    assert.match(COSTS_RAW_SOURCE['path'] ?? '', /Analytics\/scripts\/IngestionSetup_RawTables\.kql$/);
    assert.match(COSTS_RAW_SOURCE['license'] ?? '', /^MIT License, Copyright \(c\) Microsoft Corporation/);
  });

  it('holds the 144 columns of Costs_raw at that commit (59 standard, 85 x_), each once, with Kusto types', () => {
    assert.equal(COSTS_RAW_COLUMNS.length, 144);
    assert.equal(COSTS_RAW_COLUMNS.filter((c) => c.name.startsWith('x_')).length, 85);
    assert.equal(new Set(COSTS_RAW_COLUMNS.map((c) => c.name)).size, 144);
    const type = (name: string) => COSTS_RAW_COLUMNS.find((c) => c.name === name)?.type;
    assert.equal(type('BilledCost'), 'real');
    assert.equal(type('BillingPeriodStart'), 'datetime');
    assert.equal(type('x_PartnerCreditRate'), 'string');
    assert.equal(type('x_SkuTerm'), 'int');
    assert.equal(type('x_SkuIsCreditEligible'), 'bool');
    assert.equal(
      type('PricingCurrencyEffectiveCost'),
      undefined,
      'FOCUS 1.2 PricingCurrency* costs are not in Costs_raw',
    );
  });
});

describe('checkAgainstCostsRaw', () => {
  it('finds nothing to report for columns the hub keeps with types that load as they are', () => {
    const result = checkAgainstCostsRaw([
      { name: 'BilledCost', type: 'DOUBLE' },
      { name: 'ChargePeriodStart', type: 'TIMESTAMP WITH TIME ZONE' },
      { name: 'BillingCurrency', type: 'VARCHAR' },
      { name: 'Tags', type: 'JSON' },
      { name: 'x_SkuTerm', type: 'INTEGER' },
      { name: 'x_SkuIsCreditEligible', type: 'BOOLEAN' },
    ]);
    assert.deepEqual(result.dropped, []);
    assert.deepEqual(result.typeMismatches, []);
    assert.equal(result.notProvided.length, 144 - 6);
    assert.ok(!result.notProvided.includes('BilledCost'));
  });

  it('reports a column the mapping does not name as dropped, and names the right spelling for a case slip', () => {
    const result = checkAgainstCostsRaw([
      { name: 'PricingCurrencyEffectiveCost', type: 'DOUBLE' },
      { name: 'billedCost', type: 'DOUBLE' },
      { name: 'x_Unknown', type: 'VARCHAR' },
    ]);
    assert.deepEqual(
      result.dropped.map((d) => d.name),
      ['PricingCurrencyEffectiveCost', 'billedCost', 'x_Unknown'],
    );
    assert.match(result.dropped[1]!.reason, /case-sensitive and names it BilledCost/);
    assert.equal(result.dropped[0]!.reason, 'not a Costs_raw column');
  });

  it('reports money as DECIMAL into a real column, and types that do not load into the column at all', () => {
    const result = checkAgainstCostsRaw([
      { name: 'BilledCost', type: 'DECIMAL(38,10)' },
      { name: 'x_PartnerCreditRate', type: 'DOUBLE' },
      { name: 'ChargePeriodEnd', type: 'VARCHAR' },
      { name: 'x_SkuIsCreditEligible', type: 'VARCHAR' },
    ]);
    assert.deepEqual(
      result.typeMismatches.map((m) => [m.name, m.expected]),
      [
        ['BilledCost', 'real'],
        ['x_PartnerCreditRate', 'string'],
        ['ChargePeriodEnd', 'datetime'],
        ['x_SkuIsCreditEligible', 'bool'],
      ],
    );
    assert.match(result.typeMismatches[0]!.reason, /write DOUBLE for the hub/);
  });
});
