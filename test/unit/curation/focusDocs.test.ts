import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FOCUS_1_2_COLUMNS, type FocusColumn } from '../../../src/curation/focus12';

const root = join(__dirname, '..', '..', '..', '..');
const dataDoc = readFileSync(join(root, 'docs', 'data.md'), 'utf8');
const openDataDir = join(root, 'src', 'curation', 'data', 'finops-toolkit');

/** The text of a `## ` section of docs/data.md, up to the next `## ` heading. */
function section(heading: string): string {
  const start = dataDoc.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `docs/data.md has no "## ${heading}" section`);
  const end = dataDoc.indexOf('\n## ', start + 1);
  return dataDoc.slice(start, end < 0 ? undefined : end);
}

interface DocumentedColumn {
  name: string;
  level: string;
  usage: string;
  aggregatedUsage: string;
  reconciliation: string;
  basis: string;
}

/** Every row of the mapping tables: | `name` | level | usage | billed aggregated usage | reconciliation | basis |. */
function documentedMapping(): DocumentedColumn[] {
  return section('FOCUS 1.2 mapping')
    .split('\n')
    .filter((line) => /^\| `\w+` \|/.test(line))
    .map((line) => {
      const cells = line
        .slice(1, -1)
        .split('|')
        .map((cell) => cell.trim());
      assert.equal(cells.length, 6, `six cells in: ${line}`);
      const [name, level, usage, aggregatedUsage, reconciliation, basis] = cells as [
        string,
        string,
        string,
        string,
        string,
        string,
      ];
      return { name: name.replace(/`/g, ''), level, usage, aggregatedUsage, reconciliation, basis };
    });
}

const FAMILIES = ['usage', 'aggregatedUsage', 'reconciliation'] as const;

describe('the FOCUS 1.2 mapping in docs/data.md', () => {
  const documented = documentedMapping();
  const byName = new Map(documented.map((column) => [column.name, column]));

  it('lists every column the mapping writes, once, and no column the mapping does not write', () => {
    const written = FOCUS_1_2_COLUMNS.map((column) => column.name);
    const names = documented.map((column) => column.name);
    assert.deepEqual(
      names.filter((name, index) => names.indexOf(name) !== index),
      [],
      'documented twice',
    );
    assert.deepEqual(
      written.filter((name) => !byName.has(name)),
      [],
      'written by src/curation/focus12.ts but missing from docs/data.md',
    );
    assert.deepEqual(
      names.filter((name) => !written.includes(name)),
      [],
      'documented in docs/data.md but not written by src/curation/focus12.ts',
    );
    assert.equal(documented.filter((column) => column.level !== 'Extension').length, 57, 'the 57 FOCUS 1.2 columns');
  });

  it('gives each column the FOCUS level the mapping gives it', () => {
    for (const column of FOCUS_1_2_COLUMNS) {
      assert.equal(byName.get(column.name)?.level, column.level, column.name);
    }
  });

  it('says "—" exactly where a family cannot fill a column, and "as usage" only where the rule is the same', () => {
    for (const column of FOCUS_1_2_COLUMNS) {
      const doc = byName.get(column.name) as DocumentedColumn;
      for (const family of FAMILIES) {
        const cell = doc[family];
        const expression = (column as FocusColumn)[family];
        assert.equal(
          cell.startsWith('—'),
          expression === undefined,
          `${column.name}, ${family}: the docs say "${cell}", the code ${expression === undefined ? 'writes null' : `writes ${expression}`}`,
        );
        if (cell === 'as usage') {
          assert.equal(expression, column.usage, `${column.name}, ${family}: documented "as usage"`);
        }
      }
      assert.ok(doc.basis.length > 0, `${column.name}: a basis (toolkit precedent, our choice or why not filled)`);
    }
  });

  it('names the open-data files shipped with the curation code at the commits their README pins', () => {
    const readme = readFileSync(join(openDataDir, 'README.md'), 'utf8');
    const rows = [...section('FOCUS 1.2 mapping').matchAll(/^\| `(\w+\.csv)` \|.*\| `([0-9a-f]{40})` \|$/gm)];
    assert.deepEqual(
      rows.map((row) => row[1]),
      ['PricingUnits.csv', 'Regions.csv', 'Services.csv'],
    );
    for (const [, file, commit] of rows) {
      assert.ok(existsSync(join(openDataDir, file as string)), `${file} is shipped`);
      assert.match(readme, new RegExp(`\\| \`${file}\`[^\\n]*\`${commit}\``), `${file} pinned at ${commit}`);
    }
    const repositoryCommit = /taken at commit\s+`([0-9a-f]{40})`/.exec(readme)?.[1];
    assert.ok(repositoryCommit);
    assert.ok(section('FOCUS 1.2 mapping').includes(repositoryCommit), 'the repository commit');
    assert.ok(existsSync(join(openDataDir, 'LICENSE')), 'the licence text ships beside the files');
  });
});
