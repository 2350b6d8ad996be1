/**
 * What the command line shows about runs: the `runs` table, the `run --json` summary, the progress display and the
 * serving console's lines for runs started by others. Hand-written fakes only.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { summarise } from '../../src/local/cli';
import { createProgressDisplay, currentFolders, followRuns } from '../../src/local/progress';
import { formatRunsTable } from '../../src/local/runsTable';
import type { SkippedDatasets } from '../../src/pipeline/exportTargets';
import type { RunRecord } from '../../src/pipeline/ports';
import { startExports } from '../../src/pipeline/startExports';
import { drain, type FakeDeps, makeDeps, makeManifest, operationUrl, succeeded } from '../support/fakes';

function run(fields: Partial<RunRecord> & Pick<RunRecord, 'runId' | 'status'>): RunRecord {
  return {
    currency: 'USD',
    billingPeriod: 'current',
    attributeSet: 'full',
    trigger: 'manual',
    force: false,
    startedAt: '2026-12-07T06:00:00.000Z',
    updatedAt: '2026-12-07T06:00:00.000Z',
    polls: 0,
    blobsCopied: 0,
    byteCount: 0,
    ...fields,
  };
}

/** A stream that keeps what is written; `isTTY` picks the bars or the plain lines. */
function fakeStream(isTTY: boolean): NodeJS.WriteStream & { text: () => string } {
  let text = '';
  const noop = () => true;
  return {
    isTTY,
    columns: 200,
    write: (chunk: string) => {
      text += chunk;
      return true;
    },
    cursorTo: noop,
    moveCursor: noop,
    clearLine: noop,
    clearScreenDown: noop,
    on: () => undefined,
    removeListener: () => undefined,
    text: () => text,
  } as unknown as NodeJS.WriteStream & { text: () => string };
}

/** Runs one USD export to its end; the same data again (same eTag) ends `unchanged`. */
async function exportOnce(deps: FakeDeps): Promise<RunRecord> {
  const before = deps.graph.exportCalls.length;
  const [started] = await startExports({ trigger: 'manual', currencies: ['USD'], billingPeriods: ['current'] }, deps);
  deps.graph.scriptOperation(operationUrl(before + 1), succeeded(makeManifest()));
  const drained = await drain(deps, deps.queue);
  assert.deepEqual(drained.errors, []);
  const ended = await deps.ledger.getRun(started?.runId ?? '');
  assert.ok(ended !== undefined);
  return ended.value;
}

describe('runs table', () => {
  const runs = [
    run({
      runId: '20261207T060000123Z-9f3a1c2b',
      status: 'succeeded',
      blobCount: 3,
      blobsCopied: 3,
      byteCount: 774002,
    }),
    run({
      runId: '20261207T055900001Z-1c2d3e4f',
      status: 'failed',
      dataset: 'billedUsage',
      invoiceId: 'G000000001',
      currency: '',
      billingPeriod: 'last',
      errorCode: 'GRAPH_FORBIDDEN',
      error: `Microsoft Graph answered 403 Forbidden: ${'the caller may not read partner billing data; '.repeat(4)}`,
    }),
    run({ runId: '20261207T055800001Z-00000001', status: 'waiting', dataset: 'unbilledReconciliation' }),
  ];

  it('has a header and fixed columns, the dataset on every row, "?" for an unknown blob count', () => {
    const lines = formatRunsTable(runs, { filters: '', anyRun: true });
    assert.equal(lines.length, 4);
    const [header, first, second, third] = lines as [string, string, string, string];
    assert.match(header, /^RUN ID +TRIGGER +DATASET +CUR +PERIOD +ATTRS +INVOICE +STATUS +BLOBS +SIZE +ERROR$/);
    const status = header.indexOf('STATUS');
    for (const line of [first, second, third]) assert.match(line.slice(status), /^(succeeded|failed|waiting) /);
    assert.equal(first.indexOf('unbilledUsage'), header.indexOf('DATASET'));
    assert.equal(second.indexOf('billedUsage'), header.indexOf('DATASET'));
    assert.match(second, / G000000001 /);
    assert.match(third, / 0\/\? /);
    assert.match(first, / 3\/3 +755\.9 KiB$/);
  });

  it('cuts a long error to one line with a pointer to "runs RUN_ID"', () => {
    const line = formatRunsTable(runs, { filters: '', anyRun: true })[2] ?? '';
    assert.match(line, /GRAPH_FORBIDDEN: Microsoft Graph answered 403 .*… \(runs 20261207T055900001Z-1c2d3e4f\)$/);
    assert.ok(line.length < 240, `${line.length} characters`);
  });

  it('says "no runs match" with the filters when there are runs, "no runs yet" when the ledger is empty', () => {
    assert.deepEqual(formatRunsTable([], { filters: '--status failed', anyRun: true }), [
      'No runs match --status failed; "npm run cli -- runs" lists every run.',
    ]);
    assert.match(formatRunsTable([], { filters: '--status failed', anyRun: false })[0] ?? '', /^No runs yet/);
  });
});

describe('run --json summary', () => {
  it('gives each row its errorCode (null unless failed) and lists the billed datasets skipped, with the reason', () => {
    const skipped: SkippedDatasets[] = [
      { datasets: ['billedUsage', 'billedReconciliation'], kind: 'needsInvoices', reason: 'no invoice ids given' },
    ];
    const summary = summarise(
      [
        run({ runId: 'a', status: 'failed', errorCode: 'GRAPH_FORBIDDEN', error: '403' }),
        run({ runId: 'b', status: 'noData', errorCode: 'EXPORT_NO_DATA', error: 'no data' }),
      ],
      new Map(),
      skipped,
    );
    assert.deepEqual(
      summary.runs.map((r) => [r.runId, r.status, r.errorCode, r.error]),
      [
        ['a', 'failed', 'GRAPH_FORBIDDEN', '403'],
        ['b', 'noData', null, null],
      ],
    );
    assert.deepEqual(summary.skipped, [
      { dataset: 'billedUsage', kind: 'needsInvoices', reason: 'no invoice ids given' },
      { dataset: 'billedReconciliation', kind: 'needsInvoices', reason: 'no invoice ids given' },
    ]);
  });

  it('gives an unchanged run the path of the current folder of its series (where the same data is)', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const first = await exportOnce(deps);
    assert.equal(first.status, 'succeeded');
    const again = await exportOnce(deps);
    assert.equal(again.status, 'unchanged');
    const folders = await currentFolders([first, again], deps);
    const summary = summarise([again], new Map(), [], folders);
    assert.equal(summary.runs[0]?.path, first.path);
    assert.ok(first.path?.includes(`run=${first.runId}`));
  });

  it('tells the start about billed datasets with nothing to start, and why', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const skipped: SkippedDatasets[] = [];
    const started = await startExports(
      { trigger: 'manual', datasets: ['billedUsage'], onSkipped: (skip) => skipped.push(skip) },
      deps,
    );
    assert.deepEqual(started, []);
    assert.deepEqual(
      skipped.map((s) => [s.datasets, s.kind]),
      [[['billedUsage'], 'needsInvoices']],
    );
    assert.match(skipped[0]?.reason ?? '', /EXPORT_INVOICE_DISCOVERY is off/);
  });
});

describe('progress display', () => {
  const waiting = run({ runId: 'w', status: 'waiting' });
  const unchanged = run({ runId: 'u', status: 'unchanged', blobCount: 8, currency: 'EUR' });
  const folders = new Map([['u', 'unbilled-usage/billingMonth=2026-12/currency=EUR/attributeSet=full/run=X']]);

  it('on a terminal: "?" for a blob count not known yet, unchanged as a full bar with the current folder', () => {
    const stream = fakeStream(true);
    const display = createProgressDisplay(stream);
    display.update([waiting, unchanged], folders);
    display.stop();
    const text = stream.text();
    assert.match(text, /USD current full +\| ░+ \| waiting +\| 0\/\? blobs/);
    assert.doesNotMatch(text, /0\/1 blobs/);
    assert.match(
      text,
      /EUR current full +\| █+ \| unchanged \| 8\/8 blobs \| 0\.0 MiB \(current data: unbilled-usage\/.*run=X\/\)/,
    );
  });

  it('on a terminal, a line logged after the bars stopped still shows (start keeps serving after its export)', () => {
    const stream = fakeStream(true);
    const display = createProgressDisplay(stream);
    display.update([waiting]);
    display.stop();
    display.log('[run X, HTTP] USD current full waiting 0/? blobs');
    assert.match(stream.text(), /\[run X, HTTP\] USD current full waiting/);
  });

  it('in a log: the same, one line per change', () => {
    const stream = fakeStream(false);
    const display = createProgressDisplay(stream);
    display.update([waiting, unchanged], folders);
    assert.match(stream.text(), /run w USD current full +waiting 0\/\? blobs/);
    assert.match(stream.text(), /run u EUR current full +unchanged 8\/8 blobs 0\.0 MiB \(current data: .*run=X\/\)/);
  });
});

describe('serving console', () => {
  it('prints a line for each change of a run started over HTTP or by the timer, not for the runs it follows itself', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD,EUR' } });
    const since = deps.clock.now().toISOString();
    const lines: string[] = [];
    const controller = new AbortController();
    const own = await startExports({ trigger: 'manual', currencies: ['EUR'], billingPeriods: ['current'] }, deps);
    followRuns(deps, {
      since,
      log: (line) => lines.push(line),
      signal: controller.signal,
      ignore: new Set(own.map((r) => r.runId)),
      intervalMs: 5,
    });
    // What POST /api/exports does: a manual start by another caller.
    const [posted] = await startExports({ trigger: 'manual', currencies: ['USD'], billingPeriods: ['current'] }, deps);
    const deadline = Date.now() + 5000;
    while (!lines.some((l) => l.includes(posted?.runId ?? '?')) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    controller.abort();
    assert.ok(
      lines.some((l) => new RegExp(`\\[run ${posted?.runId}, HTTP\\] USD current full +waiting 0/\\? blobs`).test(l)),
      lines.join('\n'),
    );
    assert.ok(!lines.some((l) => l.includes(own[0]?.runId ?? '?')), 'its own run is shown by its progress display');
  });
});
