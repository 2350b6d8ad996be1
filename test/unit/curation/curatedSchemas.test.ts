import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ATTRIBUTE_SETS, type AttributeSet, DATASET_IDS, type DatasetId } from '../../../src/config';
import { type ColumnKind, curatedSchema } from '../../../src/curation/curatedSchemas';

const root = join(__dirname, '..', '..', '..', '..');
const dataDoc = readFileSync(join(root, 'docs', 'data.md'), 'utf8');

/** docs/data.md's words for a column's kind, as the curated schema types them. */
const DOC_KINDS: Record<string, ColumnKind> = {
  GUID: 'guid',
  text: 'text',
  date: 'date',
  decimal: 'decimal',
  'decimal (money)': 'money',
  'JSON text': 'json',
  'text (JSON list)': 'text',
};

/** The column table under a heading of docs/data.md: name, in full, in basic, kind. */
function documentedColumns(heading: string): { name: string; full: boolean; basic: boolean; kind: string }[] {
  const start = dataDoc.indexOf(`\n## ${heading}`);
  assert.ok(start >= 0, heading);
  const end = dataDoc.indexOf('\n## ', start + 1);
  const section = dataDoc.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^\| `(\w+)` \| (yes|no) \| (yes|no) \| ([^|]+?) \|/gm)].map((match) => ({
    name: match[1] as string,
    full: match[2] === 'yes',
    basic: match[3] === 'yes',
    kind: (match[4] as string).trim(),
  }));
}

function assertMatchesDocs(heading: string, dataset: DatasetId): void {
  const documented = documentedColumns(heading);
  for (const attributeSet of ['full', 'basic'] as const) {
    const expected = documented
      .filter((column) => column[attributeSet])
      .map((column) => [column.name, DOC_KINDS[column.kind] ?? `unknown kind "${column.kind}"`]);
    const actual = curatedSchema(dataset, attributeSet).columns.map((column) => [column.name, column.kind]);
    assert.deepEqual(actual, expected, `${dataset} ${attributeSet}`);
  }
}

describe('curated schemas', () => {
  it('type the usage columns in the order and with the kinds docs/data.md documents, full and basic', () => {
    assertMatchesDocs('Usage columns', 'unbilledUsage');
    assertMatchesDocs('Usage columns', 'billedUsage');
  });

  it('type the reconciliation columns in the order and with the kinds docs/data.md documents, full and basic', () => {
    assertMatchesDocs('Reconciliation columns', 'unbilledReconciliation');
    assertMatchesDocs('Reconciliation columns', 'billedReconciliation');
  });

  it('write money, prices, quantities and rates as DECIMAL(38, 12), dates as UTC timestamps and JSON as text', () => {
    for (const dataset of DATASET_IDS) {
      for (const attributeSet of ATTRIBUTE_SETS as readonly AttributeSet[]) {
        for (const column of curatedSchema(dataset, attributeSet).columns) {
          const expected = {
            money: 'DECIMAL(38, 12)',
            decimal: 'DECIMAL(38, 12)',
            date: 'TIMESTAMP WITH TIME ZONE',
            json: 'VARCHAR',
            text: 'VARCHAR',
            guid: 'VARCHAR',
          }[column.kind];
          assert.equal(column.sqlType, expected, `${dataset} ${attributeSet} ${column.name}`);
        }
      }
    }
  });

  it('give billed aggregated usage one column set whatever attribute set is asked', () => {
    assert.deepEqual(curatedSchema('billedAggregatedUsage', 'basic'), curatedSchema('billedAggregatedUsage', 'full'));
    assert.equal(curatedSchema('billedAggregatedUsage', 'full').columns.length, 55);
  });
});
