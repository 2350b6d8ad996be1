import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ATTRIBUTE_SETS, DATASET_IDS, type DatasetId } from '../../../src/config';
import { curatedSchema } from '../../../src/curation/curatedSchemas';
import { FOCUS_1_2_COLUMNS } from '../../../src/curation/focus12';
import { DATASETS } from '../../../src/datasets';
import {
  CURATED_KINDS,
  CURATED_PARTITION_KEYS,
  curatedFolder,
  curatedSeries,
  partBaseName,
  stagingFolder,
} from '../../../src/pipeline/curationLayout';
import { testConfig } from '../../support/fakes';

const RUN_ID = '20261125T114100123Z-9f3a1c2b';

/** Every `key=value` segment key of the curated and FOCUS folders of every dataset. */
function layoutKeys(): Set<string> {
  const config = testConfig();
  const keys = new Set<string>();
  for (const dataset of DATASET_IDS) {
    for (const attributeSet of ATTRIBUTE_SETS) {
      const run = {
        dataset,
        currency: 'USD',
        billingPeriod: 'current' as const,
        attributeSet,
        invoiceId: 'G000000001',
      };
      for (const kind of CURATED_KINDS) {
        const path = `${curatedFolder(kind, curatedSeries(config, run, '2026-11'))}/${partBaseName(RUN_ID, 'part-0.json.gz')}-0.parquet`;
        for (const segment of path.split('/')) {
          const at = segment.indexOf('=');
          if (at > 0) keys.add(segment.slice(0, at));
        }
      }
    }
  }
  return keys;
}

/** Every column of every curated table (dataset × attribute set) and of the FOCUS table. */
function dataColumns(): Map<string, string> {
  const columns = new Map<string, string>();
  for (const dataset of DATASET_IDS) {
    for (const attributeSet of ATTRIBUTE_SETS) {
      for (const column of curatedSchema(dataset, attributeSet).columns) {
        columns.set(column.name.toLowerCase(), `${dataset} ${attributeSet}: ${column.name}`);
      }
    }
  }
  for (const column of FOCUS_1_2_COLUMNS) columns.set(column.name.toLowerCase(), `FOCUS: ${column.name}`);
  return columns;
}

describe('curated layout', () => {
  it('has no folder key equal, ignoring case, to a column of any curated or FOCUS table', () => {
    const keys = layoutKeys();
    assert.deepEqual([...keys].sort(), [...CURATED_PARTITION_KEYS].sort());
    const columns = dataColumns();
    const clashes = [...keys]
      .filter((key) => columns.has(key.toLowerCase()))
      .map((key) => columns.get(key.toLowerCase()));
    assert.deepEqual(clashes, []);
  });

  it('would see a clash: the raw layout keys currency and invoiceId are data columns', () => {
    const columns = dataColumns();
    assert.ok(columns.has('currency'), 'reconciliation has Currency');
    assert.ok(columns.has('invoiceid'), 'FOCUS has InvoiceId');
  });

  it('puts a series per dataset, month, currency or invoice, and attribute set, staging outside curated/ and focus/', () => {
    const config = testConfig();
    const usage = { currency: 'EUR', billingPeriod: 'current' as const, attributeSet: 'basic' as const };
    assert.equal(
      curatedSeries(config, usage, '2026-11'),
      'unbilled-usage/exportMonth=2026-11/exportCurrency=EUR/exportAttributeSet=basic',
    );
    const billed = {
      ...usage,
      dataset: 'billedUsage' as DatasetId,
      invoiceId: 'G000000001',
      attributeSet: 'full' as const,
    };
    assert.equal(
      curatedSeries(config, billed, '2026-10'),
      `${DATASETS.billedUsage.defaultPrefix}/exportMonth=2026-10/exportInvoice=G000000001/exportAttributeSet=full`,
    );
    assert.ok(!stagingFolder(RUN_ID, 'focus').startsWith('focus/'));
    assert.ok(!stagingFolder(RUN_ID, 'curated').startsWith('curated/'));
    assert.equal(partBaseName(RUN_ID, 'a/b c.json.gz'), `${RUN_ID}-a_b_c`);
  });
});
