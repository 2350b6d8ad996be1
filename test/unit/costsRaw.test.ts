import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COSTS_RAW_COLUMNS, COSTS_RAW_SOURCE, checkAgainstCostsRaw } from '../../src/curation/finopsHub/costsRaw';
import { FOCUS_1_2_COLUMNS } from '../../src/curation/focus12';

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

  it('reports types that do not load into the column as they are', () => {
    const result = checkAgainstCostsRaw([
      { name: 'BilledCost', type: 'VARCHAR' },
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
    assert.equal(result.typeMismatches[0]!.reason, 'VARCHAR does not load into a Kusto real column as is');
  });

  it("accepts money as DECIMAL in a real column (Data Explorer's documented Parquet DECIMAL to real conversion)", () => {
    const result = checkAgainstCostsRaw([
      { name: 'BilledCost', type: 'DECIMAL(38, 12)' },
      { name: 'x_BillingExchangeRate', type: 'DECIMAL(18,6)' },
    ]);
    assert.deepEqual(result.typeMismatches, []);
  });
});

/** Our FOCUS 1.2 columns (src/curation/focus12.ts) as the Parquet schema of a FOCUS part. */
const OUR_SCHEMA = FOCUS_1_2_COLUMNS.map((column) => ({ name: column.name, type: column.sqlType }));

/**
 * The columns of ours the hub drops, on purpose: FOCUS 1.2 columns Costs_raw has no place for, and our own `x_`
 * extras and lineage (docs/data.md "Our x_ columns"). A new column that is neither in Costs_raw nor here fails the
 * check below: decide whether the hub should get it (name it as Costs_raw does) or add it here and to the docs.
 */
const DROPPED_BY_THE_HUB = [
  'PricingCurrencyContractedUnitPrice',
  'PricingCurrencyEffectiveCost',
  'PricingCurrencyListUnitPrice',
  'x_ChargeType',
  'x_CustomerCountry',
  'x_CustomerDomainName',
  'x_MpnId',
  'x_PricingPreTaxTotal',
  'x_Quantity',
  'x_SubscriptionId',
  'x_SourceRunId',
  'x_SourceFile',
  'x_SourceRow',
];

describe('our FOCUS columns against the FinOps hub Costs_raw (pinned at finops-toolkit 04d370f3)', () => {
  it('loads every column the hub keeps into its Costs_raw type', () => {
    assert.equal(COSTS_RAW_SOURCE['commit'], '04d370f322f6052b02893ba567c3b75195a19f99');
    const result = checkAgainstCostsRaw(OUR_SCHEMA);
    assert.deepEqual(
      result.typeMismatches.map((m) => `${m.name}: ${m.reason}`),
      [],
    );
  });

  it('has the hub drop only the columns we chose to keep for focus/ alone, none by a case slip', () => {
    const result = checkAgainstCostsRaw(OUR_SCHEMA);
    assert.deepEqual(
      result.dropped.map((d) => `${d.name}: ${d.reason}`),
      DROPPED_BY_THE_HUB.map((name) => `${name}: not a Costs_raw column`),
    );
  });

  it('fills the Costs_raw columns the hub reads the source and the billing currency from', () => {
    const result = checkAgainstCostsRaw(OUR_SCHEMA);
    for (const name of [
      'BilledCost',
      'EffectiveCost',
      'BillingCurrency',
      'ChargePeriodStart',
      'x_SourceName',
      'x_SourceProvider',
      'x_SourceType',
      'x_SourceVersion',
    ]) {
      assert.ok(!result.notProvided.includes(name), `${name} is written`);
    }
  });

  it('reports a changed column of ours: a type Costs_raw cannot load, and a name the mapping does not know', () => {
    const changed = OUR_SCHEMA.map((column) =>
      column.name === 'BilledCost'
        ? { ...column, type: 'VARCHAR' }
        : column.name === 'x_BilledUnitPrice'
          ? { ...column, name: 'x_BilledUnitprice' }
          : column,
    );
    const result = checkAgainstCostsRaw(changed);
    assert.deepEqual(
      result.typeMismatches.map((m) => m.name),
      ['BilledCost'],
    );
    const slip = result.dropped.find((d) => d.name === 'x_BilledUnitprice');
    assert.match(slip?.reason ?? '', /case-sensitive and names it x_BilledUnitPrice/);
    assert.ok(result.notProvided.includes('x_BilledUnitPrice'));
  });
});
