import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { isExportError } from '../../src/errors';
import { assertNoSecrets, assertRunFolder, type Harness, startHarness } from '../support/harness';

interface Answer {
  status: number;
  contentType: string;
  headers: Headers;
  body: Record<string, unknown>;
}

describe('HTTP routes, timer and configuration end to end (local Functions host over HTTP)', () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({ http: true });
  });

  after(async () => {
    await h?.stop();
  });

  afterEach(async () => {
    await h.drain();
  });

  async function call(method: 'GET' | 'POST', path: string, body?: string): Promise<Answer> {
    assert.ok(h.httpBaseUrl !== undefined);
    const response = await fetch(`${h.httpBaseUrl}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body }),
    });
    const text = await response.text();
    return {
      status: response.status,
      contentType: response.headers.get('content-type') ?? '',
      headers: response.headers,
      body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
    };
  }

  it('answers POST /api/exports with a bad body with 400 problem+json naming the field', async () => {
    h.beginTest();
    const cases: Array<[string, RegExp]> = [
      ['{"currencies":["USDX"]}', /currencies: "USDX" is not a currency code/],
      ['{"attributeSet":"partial"}', /attributeSet/],
      ['{"billingPeriods":["next"]}', /billingPeriods/],
      ['{"force":"yes"}', /force/],
      ['{"colour":"red"}', /colour/],
      ['{"currencies":', /not JSON/],
    ];
    for (const [body, field] of cases) {
      const answer = await call('POST', '/api/exports', body);
      assert.equal(answer.status, 400, body);
      assert.match(answer.contentType, /^application\/problem\+json/);
      assert.equal(answer.body['status'], 400);
      assert.equal(answer.body['code'], 'REQUEST_INVALID');
      assert.equal(typeof answer.body['title'], 'string');
      assert.match(String(answer.body['detail']), field, body);
      assert.match(String(answer.body['detail']), /Accepted body/, 'the problem says what is accepted');
    }
    assert.deepEqual(await h.listDestination(), []);
    assert.equal(h.emulator.requests.filter((r) => r.method === 'POST').length, 0, 'no export was started');
  });

  it('starts over POST /api/exports and shows the runs and their per-blob progress on GET /api/exports/runs[/{runId}]', async () => {
    h.beginTest();
    const started = await call('POST', '/api/exports', '{"currencies":["USD"]}');
    assert.equal(started.status, 202);
    const [run] = started.body['runs'] as Array<Record<string, unknown>>;
    assert.ok(run !== undefined);
    const runId = String(run['runId']);
    assert.equal(run['alreadyInFlight'], false);
    assert.equal(run['statusUrl'], `${h.host.httpBaseUrl}/api/exports/runs/${runId}`);
    assert.equal(started.headers.get('location'), run['statusUrl']);
    const [ended] = await h.waitForTerminal([runId]);
    assert.ok(ended !== undefined);
    await assertRunFolder(h, ended);

    const list = await call('GET', '/api/exports/runs');
    assert.equal(list.status, 200);
    const listed = (list.body['runs'] as Array<Record<string, unknown>>).find((r) => r['runId'] === runId);
    assert.equal(listed?.['status'], 'succeeded');
    assert.equal(listed?.['path'], ended.path);
    assert.equal(listed?.['blobCount'], ended.blobCount);
    assert.equal(listed?.['byteCount'], ended.byteCount);
    assert.ok(!('finalizingSince' in (listed ?? {})), 'internal coordination fields stay internal');

    const filtered = await call('GET', '/api/exports/runs?status=succeeded&currency=usd&limit=5');
    assert.equal(filtered.status, 200);
    const filteredRuns = filtered.body['runs'] as Array<Record<string, unknown>>;
    assert.ok(filteredRuns.some((r) => r['runId'] === runId));
    assert.ok(filteredRuns.every((r) => r['status'] === 'succeeded' && r['currency'] === 'USD'));
    const none = await call('GET', '/api/exports/runs?status=failed&currency=USD');
    assert.ok(!(none.body['runs'] as Array<Record<string, unknown>>).some((r) => r['runId'] === runId));

    const details = await call('GET', `/api/exports/runs/${runId}`);
    assert.equal(details.status, 200);
    assert.equal((details.body['run'] as Record<string, unknown>)['runId'], runId);
    const blobs = details.body['blobs'] as Array<Record<string, unknown>>;
    assert.equal(blobs.length, ended.blobCount);
    for (const blob of blobs) {
      assert.equal(blob['status'], 'copied');
      assert.equal(typeof blob['name'], 'string');
      assert.ok(Number(blob['byteCount']) > 0);
    }

    const missing = await call('GET', '/api/exports/runs/20990101T000000000Z-0000abcd');
    assert.equal(missing.status, 404);
    assert.equal(missing.body['code'], 'RUN_NOT_FOUND');
    const invalid = await call('GET', '/api/exports/runs/not-a-run-id');
    assert.equal(invalid.status, 400);
    assert.match(String(invalid.body['detail']), /not a run id/);
    const badFilter = await call('GET', '/api/exports/runs?status=done');
    assert.equal(badFilter.status, 400);
    assert.match(String(badFilter.body['detail']), /status: "done"/);
  });

  it('answers a second POST while the first export is in flight with the same run ids and alreadyInFlight', async () => {
    h.beginTest();
    h.emulator.configure({ pollsBeforeSuccess: 3 }, 'PLN');
    const body = '{"currencies":["PLN"],"billingPeriods":["current","last"]}';
    const first = await call('POST', '/api/exports', body);
    const second = await call('POST', '/api/exports', body);
    assert.equal(first.status, 202);
    assert.equal(second.status, 202);
    const firstRuns = first.body['runs'] as Array<Record<string, unknown>>;
    const secondRuns = second.body['runs'] as Array<Record<string, unknown>>;
    assert.equal(firstRuns.length, 2);
    assert.deepEqual(
      secondRuns.map((r) => r['runId']),
      firstRuns.map((r) => r['runId']),
    );
    assert.ok(firstRuns.every((r) => r['alreadyInFlight'] === false));
    assert.ok(secondRuns.every((r) => r['alreadyInFlight'] === true));
    const ended = await h.waitForTerminal(firstRuns.map((r) => String(r['runId'])));
    for (const run of ended) await assertRunFolder(h, run);
    const exportsStarted = h.emulator.operations().filter((op) => op.currency === 'PLN');
    assert.equal(exportsStarted.length, 2, 'one Graph export per currency and period');
  });

  it('starts every configured currency from the timer with trigger schedule', async () => {
    h.beginTest();
    h.setEnv({ EXPORT_CURRENCIES: 'CZK,HUF' });
    const since = new Date().toISOString();
    await h.host.runTimerNow();
    const runs = (await h.ledger.listRuns({ since })).filter((r) => r.currency === 'CZK' || r.currency === 'HUF');
    assert.equal(runs.length, 2);
    const ended = await h.waitForTerminal(runs.map((r) => r.runId));
    for (const run of ended) {
      assert.equal(run.trigger, 'schedule');
      await assertRunFolder(h, run);
    }
  });

  it('fails loudly on invalid settings: the HTTP routes answer 500 listing every problem, the timer throws CONFIG_INVALID', async () => {
    h.beginTest();
    const bad = {
      EXPORT_CURRENCIES: 'US1,EUR',
      EXPORT_BILLING_PERIODS: 'next',
      EXPORT_ATTRIBUTE_SET: 'partial',
      EXPORT_SCHEDULE: '0 6 * * *',
      EXPORT_POLL_INITIAL_SECONDS: 'soon',
      DESTINATION_CONTAINER: 'Bad_Container',
    };
    const since = new Date().toISOString();
    try {
      h.setEnv(bad);
      for (const [method, path] of [
        ['POST', '/api/exports'],
        ['GET', '/api/exports/runs'],
      ] as const) {
        const answer = await call(method, path, method === 'POST' ? '{}' : undefined);
        assert.equal(answer.status, 500, path);
        assert.match(answer.contentType, /^application\/problem\+json/);
        assert.equal(answer.body['code'], 'CONFIG_INVALID');
        const detail = String(answer.body['detail']);
        assert.match(detail, /6 problems/);
        for (const setting of Object.keys(bad)) assert.match(detail, new RegExp(`${setting}: `), setting);
      }
      const errorsBefore = h.logs.filter((l) => l.functionName === 'startExportsTimer' && l.level === 'error').length;
      await assert.rejects(h.host.runTimerNow(), (error: unknown) => {
        assert.ok(isExportError(error));
        assert.equal(error.code, 'CONFIG_INVALID');
        for (const setting of Object.keys(bad)) assert.match(error.message, new RegExp(setting));
        return true;
      });
      const timerErrors = h.logs.filter((l) => l.functionName === 'startExportsTimer' && l.level === 'error');
      assert.equal(timerErrors.length, errorsBefore + 1, 'the timer logs the configuration error');
      assert.match(timerErrors.at(-1)?.line ?? '', /Configuration is invalid/);
    } finally {
      h.beginTest();
    }
    assert.deepEqual(await h.ledger.listRuns({ since }), [], 'no run was started');
  });

  // Last on purpose: it scans what every test of this file left behind.
  it('leaves no SAS or bearer token in logs, ledger rows, manifest.json, latest.json or telemetry', async () => {
    const scanned = await assertNoSecrets(h);
    assert.ok(scanned.runs >= 5 && scanned.logLines > 50 && scanned.telemetryBodies > 0, JSON.stringify(scanned));
  });
});
