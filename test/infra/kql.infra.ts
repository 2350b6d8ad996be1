/**
 * Every KQL text the project ships (alert rules and workbook queries as deployed, infra/queries, the KQL blocks of
 * the docs) parses and type-checks with Microsoft's Kusto language service against the schema of its scope, with
 * controls: deliberately broken queries, through the same path, must fail.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  allKqlTexts,
  analyseKql,
  declaredExternalTables,
  deployedQueries,
  type KqlText,
  markdownFiles,
  markdownQueries,
  queryFiles,
} from './kql';

const appInsights = { kind: 'applicationInsights' } as const;

function report(text: KqlText): string {
  return analyseKql(text.text, text.scope)
    .map((d) => `${text.where} (${d.line},${d.column}): ${d.severity} ${d.code}: ${d.message}`)
    .join('\n');
}

describe('KQL: the texts checked', () => {
  it('holds every alert rule and workbook query of the snapshots, every infra/queries file and the docs blocks', () => {
    const deployed = deployedQueries();
    const rules = deployed.filter((t) => t.where.includes(': alert rule '));
    const workbook = deployed.filter((t) => t.where.includes(': workbook item '));
    // Five rules; the no-success rule differs per case (its series and window).
    assert.ok(rules.length >= 5 + 3, `alert rule texts: ${rules.length}`);
    // Two workbook items show an alert query (the failed runs, the poisoned messages), counted once.
    assert.ok(workbook.length >= 5, `workbook texts: ${workbook.length}`);
    assert.ok(queryFiles().length >= 10, 'infra/queries');
    const docs = markdownQueries(markdownFiles());
    assert.ok(docs.filter((t) => t.where.startsWith('docs/observability.md')).length >= 3, 'observability.md');
    const dataExplorer = docs.filter((t) => t.scope.kind === 'dataExplorer');
    assert.ok(dataExplorer.length >= 5, 'the Azure Data Explorer examples of docs/data.md');
    assert.ok(
      dataExplorer.some((t) => t.text.trimStart().startsWith('.create external table')),
      'the control command too',
    );
  });
});

describe('KQL: every text the project ships', () => {
  const texts = allKqlTexts();
  it(`analyses ${texts.length} texts with no error and no warning`, () => {
    const problems = texts.map(report).filter((r) => r !== '');
    assert.deepEqual(problems, []);
  });
});

describe('KQL: controls (a broken query must be caught)', () => {
  it('catches a misspelt column, an unknown table, a syntax error and a type error', () => {
    const broken: [string, string][] = [
      ['customEvents | where nam == "ExportRunFailed"', 'KS142'],
      ['AppEvents | where Name == "ExportRunFailed"', 'KS204'],
      ['customEvents | where name == "ExportRunFailed" |', ''],
      ['customEvents | where timestamp > 3 and name == "x"', ''],
      ['customEvents | summarize arg_max(timestamp, *) by runId', 'KS142'],
    ];
    for (const [query, code] of broken) {
      const diagnostics = analyseKql(query, appInsights);
      assert.ok(diagnostics.length > 0, `not caught: ${query}`);
      if (code !== '')
        assert.ok(
          diagnostics.some((d) => d.code === code),
          `${query}: ${JSON.stringify(diagnostics)}`,
        );
    }
  });

  it('catches a deployed alert query with one column misspelt', () => {
    const rule = deployedQueries().find((t) => t.where.includes('run-failed'));
    assert.ok(rule !== undefined);
    assert.deepEqual(analyseKql(rule.text, appInsights), []);
    const broken = rule.text.replace('| where name == "ExportRunFailed"', '| where eventName == "ExportRunFailed"');
    assert.notEqual(broken, rule.text);
    assert.ok(analyseKql(broken, appInsights).length > 0);
  });

  it('catches a broken query in a Markdown KQL block, and an external table the file does not declare', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kql-control-'));
    try {
      const file = join(dir, 'control.md');
      writeFileSync(
        file,
        [
          '# Control',
          '',
          '```kusto',
          'customEvents',
          '| where name == "ExportRunFailed"',
          '| project timestamp, runId = tostring(customDimensions.runId)',
          '',
          'customEvents | project timestamp, nme',
          '```',
          '',
          '```kusto',
          '.create external table Declared (Cost: decimal, Currency: string) kind = storage dataformat = parquet',
          "  ( h@'abfss://c@account.dfs.core.windows.net/f;impersonate' )",
          '',
          "external_table('Declared') | summarize sum(Cost) by Currency",
          '',
          "external_table('Undeclared') | summarize sum(Cost) by Currency",
          '```',
          '',
        ].join('\n'),
      );
      const texts = markdownQueries([file]);
      assert.deepEqual(
        texts.map((t) => [t.where.replace(/^.*control\.md/, 'control.md'), t.scope.kind]),
        [
          ['control.md:4', 'applicationInsights'],
          ['control.md:8', 'applicationInsights'],
          ['control.md:12', 'dataExplorer'],
          ['control.md:15', 'dataExplorer'],
          ['control.md:17', 'dataExplorer'],
        ],
      );
      assert.deepEqual(
        texts.map((t) => analyseKql(t.text, t.scope).length > 0),
        [false, true, false, false, true],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the columns of a `.create external table` command', () => {
    assert.deepEqual(
      declaredExternalTables('.create external table T (a: string,\n    b: decimal)\n  kind = storage'),
      {
        T: '(a: string, b: decimal)',
      },
    );
  });
});
