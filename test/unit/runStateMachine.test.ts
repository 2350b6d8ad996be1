/**
 * Regression tests of the run state machine (issue "Trustworthy runs"): each `describe` names one way a run used
 * to end stuck, duplicated or overwritten, reproduced over the in-memory fakes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportError } from '../../src/errors';
import { copyExportBlob } from '../../src/pipeline/copyExportBlob';
import { handlePoisonMessage } from '../../src/pipeline/handlePoisonMessage';
import { parseCopyMessage, parseStatusMessage } from '../../src/pipeline/messages';
import { pollExportStatus } from '../../src/pipeline/pollExportStatus';
import type { OperationState, RunRecord } from '../../src/pipeline/ports';
import { startExports } from '../../src/pipeline/startExports';
import { superviseRuns } from '../../src/pipeline/superviseRuns';
import { drain, type FakeDeps, makeDeps, makeManifest, succeeded } from '../support/fakes';

const USD = { env: { EXPORT_CURRENCIES: 'USD' } };

async function startUsd(deps: FakeDeps): Promise<string> {
  const [started] = await startExports({ trigger: 'manual', currencies: ['USD'], billingPeriods: ['current'] }, deps);
  assert.ok(started !== undefined && started.runId !== '', `started: ${JSON.stringify(started)}`);
  return started.runId;
}

function runOf(deps: FakeDeps, runId: string): RunRecord {
  const found = deps.ledger.runs.get(runId);
  assert.ok(found !== undefined, `run ${runId} is in the ledger`);
  return found.value;
}

async function deliverNextStatus(deps: FakeDeps): Promise<void> {
  const next = deps.queue.pendingStatus.shift();
  assert.ok(next !== undefined, 'a status message is pending');
  deps.clock.advanceSeconds(next.delaySeconds);
  await pollExportStatus(parseStatusMessage(next.raw), deps);
}

/** A host-storage refusal as @azure/data-tables reports it (RestError shape). */
function tableForbidden(): Error {
  return Object.assign(new Error('This request is not authorized to perform this operation using this permission.'), {
    name: 'RestError',
    statusCode: 403,
    code: 'AuthorizationPermissionMismatch',
    request: { url: 'https://hoststorage.table.core.windows.net/exportRunBlobs' },
  });
}

function storageUnavailable(): Error {
  return Object.assign(new Error('Server busy'), { name: 'RestError', statusCode: 503, code: 'ServerBusy' });
}

describe('1. a finisher that dies while completing the run', () => {
  it('is replaced by the next message of the run, which completes it once', async () => {
    const deps = makeDeps(USD);
    const runId = await startUsd(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: ['a.json.gz', 'b.json.gz'] })));
    await deliverNextStatus(deps);
    const [first, second] = deps.queue.takeCopies();
    await copyExportBlob(parseCopyMessage(first!), deps);

    // The worker of the last copy wrote manifest.json and then hung for ever (out of memory, lost instance):
    // its write of latest.json never returns.
    const write = deps.destination.writeJson.bind(deps.destination);
    let hung = false;
    deps.destination.writeJson = async (path, value, condition) => {
      if (path.endsWith('/latest.json') && !hung) {
        hung = true;
        return new Promise<boolean>(() => undefined);
      }
      return write(path, value, condition);
    };
    void copyExportBlob(parseCopyMessage(second!), deps);
    for (let i = 0; i < 200 && !hung; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.ok(hung, 'the first finisher reached latest.json');

    // The queue redelivers its message (the visibility timeout ran out): it must finish the run.
    await copyExportBlob(parseCopyMessage(second!), deps);
    assert.equal(runOf(deps, runId).status, 'succeeded');
    assert.equal(deps.telemetry.completed.length, 1, 'one ExportRunCompleted');
    assert.equal(deps.destination.writeCount(`${runOf(deps, runId).path}/manifest.json`), 1);
  });
});

describe('2. an export with no blobs whose completion write fails once', () => {
  it('completes when its status message is retried', async () => {
    const deps = makeDeps(USD);
    const runId = await startUsd(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: [] })));
    const update = deps.ledger.updateRun.bind(deps.ledger);
    let failures = 0;
    deps.ledger.updateRun = async (id, fields, etag) => {
      if (fields.status === 'succeeded' && failures === 0) {
        failures += 1;
        throw storageUnavailable();
      }
      return update(id, fields, etag);
    };
    const message = deps.queue.pendingStatus[0];
    assert.ok(message !== undefined);
    await assert.rejects(deliverNextStatus(deps));
    assert.notEqual(runOf(deps, runId).status, 'succeeded');

    await pollExportStatus(parseStatusMessage(message.raw), deps); // the queue's retry of the same message
    assert.equal(runOf(deps, runId).status, 'succeeded');
    assert.equal(deps.telemetry.completed.length, 1);
  });
});

describe('3. Graph accepted the export, then a write failed', () => {
  it('a start retried after its first status check could not be sent still gets checked', async () => {
    const deps = makeDeps(USD);
    deps.graph.scriptStart(new ExportError('GRAPH_THROTTLED', 'throttled', { retryable: true, retryAfterSeconds: 5 }));
    const runId = await startUsd(deps);
    const start = deps.queue.pendingStatus.shift();
    assert.equal(start?.message.kind, 'start');

    // Graph accepts on the retried start, but sending the first status check fails every time in this delivery.
    const send = deps.queue.sendStatus.bind(deps.queue);
    deps.queue.sendStatus = async () => {
      throw storageUnavailable();
    };
    await assert.rejects(pollExportStatus(parseStatusMessage(start!.raw), deps));
    assert.equal(runOf(deps, runId).status, 'waiting');
    deps.queue.sendStatus = send;

    // The queue delivers the start message again: the run must be checked, not ignored.
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    await pollExportStatus(parseStatusMessage(start!.raw), deps);
    const drained = await drain(deps, deps.queue);
    assert.deepEqual(drained.errors, []);
    assert.equal(runOf(deps, runId).status, 'succeeded');
    assert.equal(deps.graph.startCalls.length, 2, 'the throttled call and the accepted one: no second export');
  });

  it('a failed write of the operation does not ask Graph for a second export', async () => {
    const deps = makeDeps(USD);
    const update = deps.ledger.updateRun.bind(deps.ledger);
    deps.ledger.updateRun = async (id, fields, etag) => {
      if (fields.status === 'waiting' && fields.operationUrl !== undefined) throw storageUnavailable();
      return update(id, fields, etag);
    };
    const runId = await startUsd(deps);
    deps.ledger.updateRun = update;
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    const drained = await drain(deps, deps.queue);
    assert.deepEqual(drained.errors, []);
    assert.equal(runOf(deps, runId).status, 'succeeded');
    assert.equal(deps.graph.startCalls.length, 1, 'exactly one Graph export');
  });

  for (const [what, env, retryAfterSeconds, dueMinutes] of [
    ['a Retry-After of 900 s', {}, 900, 15],
    [
      'EXPORT_POLL_INITIAL_SECONDS=2400',
      { EXPORT_POLL_INITIAL_SECONDS: '2400', EXPORT_POLL_MAX_SECONDS: '3600' },
      undefined,
      40,
    ],
  ] as const) {
    it(`a failed write of the operation with a first check due after ${what} is not taken for an unanswered start by the supervisor`, async () => {
      const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD', EXPORT_STALL_MINUTES: '10', ...env } });
      deps.graph.scriptStart(retryAfterSeconds === undefined ? {} : { retryAfterSeconds });
      const update = deps.ledger.updateRun.bind(deps.ledger);
      deps.ledger.updateRun = async (id, fields, etag) => {
        if (fields.status === 'waiting' && fields.operationUrl !== undefined) throw storageUnavailable();
        return update(id, fields, etag);
      };
      const runId = await startUsd(deps);
      deps.ledger.updateRun = update;
      const [check] = deps.queue.takeStatus();
      assert.equal(check?.delaySeconds, dueMinutes * 60);
      assert.equal(runOf(deps, runId).status, 'starting', 'the operation is carried by the check, not recorded');

      // Sweeps before the carried check is due: none may send the start again.
      const start = deps.clock.now().getTime();
      for (const minutes of [4, 11, 14, dueMinutes - 0.5]) {
        deps.clock.set(new Date(start + minutes * 60_000));
        const report = await superviseRuns(deps);
        assert.equal(report.resumed, 0, `no resume at +${minutes} min`);
      }
      // A start the supervisor sent would be due long before the check: deliver such messages first.
      deps.graph.scriptOperation('*', succeeded(makeManifest()));
      for (const sent of deps.queue.takeStatus()) await pollExportStatus(parseStatusMessage(sent.raw), deps);
      deps.clock.set(new Date(start + dueMinutes * 60_000));
      await pollExportStatus(parseStatusMessage(check!.raw), deps);
      assert.deepEqual((await drain(deps, deps.queue)).errors, []);
      assert.equal(runOf(deps, runId).status, 'succeeded');
      assert.equal(deps.graph.startCalls.length, 1, 'exactly one Graph export');
    });
  }
});

describe('5. one currency whose start fails', () => {
  it('does not keep the other currencies from starting, and is reported with its reason', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD,EUR,GBP' } });
    const acquire = deps.ledger.acquireStartLock.bind(deps.ledger);
    deps.ledger.acquireStartLock = async (key, runId, isStale) => {
      if (key.startsWith('USD')) throw storageUnavailable();
      return acquire(key, runId, isStale);
    };
    const started = await startExports({ trigger: 'schedule' }, deps);
    assert.deepEqual(
      started.map((s) => [s.currency, s.error === undefined ? s.status : 'error']),
      [
        ['USD', 'error'],
        ['EUR', 'waiting'],
        ['GBP', 'waiting'],
      ],
    );
    assert.match(started[0]?.error ?? '', /Server busy/);
    assert.equal(deps.graph.startCalls.length, 2);
  });
});

describe('6. final states are never rewritten', () => {
  it('a late duplicate status check does not turn succeeded into unchanged', async () => {
    const deps = makeDeps(USD);
    const runId = await startUsd(deps);
    const manifest = makeManifest();
    const message = deps.queue.pendingStatus[0];
    assert.ok(message !== undefined);
    // The duplicate reads the run (waiting), then Graph answers it only after the first delivery completed the run.
    let release: (() => void) | undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let calls = 0;
    deps.graph.getOperation = async (): Promise<OperationState> => {
      calls += 1;
      if (calls === 1) await gate;
      return succeeded(manifest);
    };
    const duplicate = pollExportStatus(parseStatusMessage(message.raw), deps);
    await new Promise((resolve) => setImmediate(resolve));
    const drained = await drain(deps, deps.queue);
    assert.deepEqual(drained.errors, []);
    assert.equal(runOf(deps, runId).status, 'succeeded');
    release?.();
    await duplicate.catch(() => undefined);
    assert.equal(runOf(deps, runId).status, 'succeeded');
    assert.equal(deps.telemetry.completed.length, 1, 'one ExportRunCompleted');
  });

  it('a poisoned message read before the run completed does not fail it', async () => {
    const deps = makeDeps(USD);
    const runId = await startUsd(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    await deliverNextStatus(deps);
    const copies = deps.queue.takeCopies();
    // The poison handler reads the run while it is copying...
    const getRun = deps.ledger.getRun.bind(deps.ledger);
    const stale = await getRun(runId);
    let served = false;
    deps.ledger.getRun = async (id) => {
      if (!served && id === runId) {
        served = true;
        for (const raw of copies) await copyExportBlob(parseCopyMessage(raw), deps); // ...which then completes
        return stale;
      }
      return getRun(id);
    };
    await handlePoisonMessage('export-copy-poison', copies[0], deps);
    assert.equal(runOf(deps, runId).status, 'succeeded');
    assert.equal(deps.telemetry.failed.length, 0, 'no ExportRunFailed');
    assert.equal(deps.telemetry.completed.length, 1);
  });

  it('a terminal error after manifest.json was written does not report the complete folder failed', async () => {
    const deps = makeDeps(USD);
    const runId = await startUsd(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: ['a.json.gz'] })));
    await deliverNextStatus(deps);
    const write = deps.destination.writeJson.bind(deps.destination);
    deps.destination.writeJson = async (path, value, condition) => {
      if (path.endsWith('/latest.json')) {
        throw new ExportError('DESTINATION_FORBIDDEN', 'Writing latest.json was refused (403).', { status: 403 });
      }
      return write(path, value, condition);
    };
    for (const raw of deps.queue.takeCopies()) await copyExportBlob(parseCopyMessage(raw), deps);
    const run = runOf(deps, runId);
    assert.ok(deps.destination.json(`${run.path}/manifest.json`) !== undefined);
    assert.equal(run.status, 'succeeded');
    assert.equal(deps.telemetry.failed.length, 0);
  });
});

describe('7. a run whose next step never comes', () => {
  it('is resumed by the supervisor once overdue, and completes', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD', EXPORT_STALL_MINUTES: '30' } });
    const runId = await startUsd(deps);
    deps.queue.takeStatus(); // the status check is lost (a crash between the ledger write and the message)
    deps.clock.advanceSeconds(20 * 60);
    assert.deepEqual((await superviseRuns(deps)).resumed, 0, 'not overdue yet');
    deps.clock.advanceSeconds(20 * 60);
    const report = await superviseRuns(deps);
    assert.equal(report.resumed, 1);
    assert.equal(deps.telemetry.resumed.length, 1);
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    assert.deepEqual((await drain(deps, deps.queue)).errors, []);
    assert.equal(runOf(deps, runId).status, 'succeeded');
  });

  it('fails with RUN_STALLED and ExportRunFailed once resumes are exhausted', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD', EXPORT_STALL_MINUTES: '30', EXPORT_MAX_RESUMES: '2' } });
    const runId = await startUsd(deps);
    for (let i = 0; i < 3; i++) {
      deps.queue.takeStatus();
      deps.clock.advanceSeconds(31 * 60);
      await superviseRuns(deps);
    }
    const run = runOf(deps, runId);
    assert.equal(run.status, 'failed');
    assert.equal(run.errorCode, 'RUN_STALLED');
    assert.match(run.error ?? '', /stalled while waiting/);
    assert.equal(deps.telemetry.failed.length, 1);
    assert.equal(deps.telemetry.failed[0]?.run.errorCode, 'RUN_STALLED');
    assert.equal(deps.ledger.locks.size, 0, 'the series may start again');
  });

  it('completes instead of failing a stalled copying run whose manifest.json is in place', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD', EXPORT_MAX_RESUMES: '0' } });
    const runId = await startUsd(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: ['a.json.gz'] })));
    await deliverNextStatus(deps);
    const update = deps.ledger.updateRun.bind(deps.ledger);
    deps.ledger.updateRun = async (id, fields, etag) => {
      if (fields.status === 'succeeded') throw new Error('process died');
      return update(id, fields, etag);
    };
    for (const raw of deps.queue.takeCopies()) await copyExportBlob(parseCopyMessage(raw), deps).catch(() => undefined);
    deps.ledger.updateRun = update;
    deps.clock.advanceSeconds(3600);
    await superviseRuns(deps);
    assert.equal(runOf(deps, runId).status, 'succeeded');
    assert.equal(deps.telemetry.failed.length, 0);
  });
});

describe('a run in flight for longer than two weeks', () => {
  it('is failed by one sweep with RUN_STALLED and ExportRunFailed, 15 days after it started', async () => {
    const deps = makeDeps(USD);
    const runId = await startUsd(deps);
    deps.queue.takeStatus(); // its status check is lost, and no sweep ran since (the app was stopped)
    deps.clock.advanceHours(15 * 24);
    const report = await superviseRuns(deps);
    assert.equal(report.ended, 1);
    const run = runOf(deps, runId);
    assert.equal(run.status, 'failed');
    assert.equal(run.errorCode, 'RUN_STALLED');
    assert.deepEqual(
      deps.telemetry.failed.map((f) => [f.run.runId, f.run.errorCode]),
      [[runId, 'RUN_STALLED']],
    );
    assert.equal(deps.ledger.locks.size, 0, 'the series may start again');
  });

  it('is failed with its end event when a new start of its series replaces its start lock', async () => {
    const deps = makeDeps(USD);
    const oldRunId = await startUsd(deps);
    deps.queue.takeStatus();
    deps.clock.advanceHours(15 * 24);
    const newRunId = await startUsd(deps);
    assert.notEqual(newRunId, oldRunId);
    const old = runOf(deps, oldRunId);
    assert.equal(old.status, 'failed', 'the replaced run is not left in flight');
    assert.equal(old.errorCode, 'RUN_STALLED');
    assert.match(old.error ?? '', new RegExp(`when run ${newRunId} started the same export`));
    assert.deepEqual(
      deps.telemetry.failed.map((f) => f.run.runId),
      [oldRunId],
    );
    assert.equal(runOf(deps, newRunId).status, 'waiting');
    assert.deepEqual(
      [...deps.ledger.locks.values()].map((lock) => lock.runId),
      [newRunId],
    );
    assert.equal(deps.graph.startCalls.length, 2);
  });

  it('has its lost end event sent by the supervisor, 15 days after it started', async () => {
    const deps = makeDeps(USD);
    const runId = await startUsd(deps);
    deps.queue.takeStatus();
    deps.clock.advanceHours(15 * 24);
    // It ended, and its process died before sending the end event.
    await deps.ledger.updateRun(runId, {
      status: 'failed',
      errorCode: 'GRAPH_GONE',
      error: 'failed',
      announced: false,
      updatedAt: deps.clock.now().toISOString(),
      completedAt: deps.clock.now().toISOString(),
    });
    deps.clock.advanceSeconds(3600);
    const report = await superviseRuns(deps);
    assert.equal(report.announced, 1);
    assert.deepEqual(
      deps.telemetry.failed.map((f) => f.run.runId),
      [runId],
    );
  });
});

describe('an end event lost to a crash right after the ending write', () => {
  it('is sent by the supervisor, once', async () => {
    const deps = makeDeps(USD);
    const runId = await startUsd(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: ['a.json.gz'] })));
    await deliverNextStatus(deps);
    const record = deps.telemetry.runCompleted.bind(deps.telemetry);
    deps.telemetry.runCompleted = () => {
      throw new Error('process died');
    };
    for (const raw of deps.queue.takeCopies()) await copyExportBlob(parseCopyMessage(raw), deps).catch(() => undefined);
    deps.telemetry.runCompleted = record;
    assert.equal(runOf(deps, runId).status, 'succeeded');
    assert.equal(runOf(deps, runId).announced, false);
    assert.equal(deps.telemetry.completed.length, 0);

    deps.clock.advanceSeconds(60);
    assert.equal((await superviseRuns(deps)).announced, 0, 'its own process still has time');
    deps.clock.advanceSeconds(120);
    assert.equal((await superviseRuns(deps)).announced, 1);
    assert.equal((await superviseRuns(deps)).announced, 0);
    assert.equal(deps.telemetry.completed.length, 1);
    assert.equal(runOf(deps, runId).announced, true);
  });

  for (const [stall, graceSeconds] of [
    ['0.5', 30],
    ['0.05', 15],
  ] as const) {
    it(`is sent after ${graceSeconds} s of silence with EXPORT_STALL_MINUTES=${stall} (the stall time when shorter than 2 min, never under 15 s)`, async () => {
      const deps = makeDeps({ env: { ...USD.env, EXPORT_STALL_MINUTES: stall } });
      const runId = await startUsd(deps);
      deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: [] })));
      const record = deps.telemetry.runCompleted.bind(deps.telemetry);
      deps.telemetry.runCompleted = () => {
        throw new Error('process died');
      };
      await deliverNextStatus(deps).catch(() => undefined);
      deps.telemetry.runCompleted = record;
      assert.equal(runOf(deps, runId).status, 'succeeded');
      assert.equal(runOf(deps, runId).announced, false);

      deps.clock.advanceSeconds(graceSeconds - 5);
      assert.equal((await superviseRuns(deps)).announced, 0, 'its own process may still be flushing');
      assert.equal((await superviseRuns(deps, { stallMinutes: 0 })).announced, 0, 'an override resumes, not announces');
      deps.clock.advanceSeconds(6);
      assert.equal((await superviseRuns(deps)).announced, 1);
      assert.equal(deps.telemetry.completed.length, 1);
    });
  }
});

describe('10. a missing role on the host storage', () => {
  it('fails the run at once, naming the role to grant, instead of retrying', async () => {
    const deps = makeDeps(USD);
    const runId = await startUsd(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: ['a.json.gz'] })));
    await deliverNextStatus(deps);
    deps.ledger.markBlobCopied = async () => {
      throw tableForbidden();
    };
    const [copy] = deps.queue.takeCopies();
    await copyExportBlob(parseCopyMessage(copy!), deps); // returns: the message is not retried
    const run = runOf(deps, runId);
    assert.equal(run.status, 'failed');
    assert.equal(run.errorCode, 'HOST_STORAGE_FORBIDDEN');
    assert.match(run.error ?? '', /Storage Table Data Contributor/);
  });
});

describe('races found in review', () => {
  const flush = async (n = 300) => {
    for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
  };

  it('two overlapping deliveries of one start message call Graph once', async () => {
    const deps = makeDeps(USD);
    deps.graph.scriptStart(new ExportError('GRAPH_THROTTLED', 'throttled', { retryable: true, retryAfterSeconds: 5 }));
    await startUsd(deps);
    const start = deps.queue.takeStatus()[0];
    assert.equal(start?.message.kind, 'start');
    const original = deps.graph.startExport.bind(deps.graph);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let calls = 0;
    deps.graph.startExport = async (request) => {
      calls += 1;
      if (calls === 1) await gate; // delivery A: Graph is slow; the message becomes visible again
      return original(request);
    };
    const a = pollExportStatus(parseStatusMessage(start!.raw), deps);
    await flush();
    const b = pollExportStatus(parseStatusMessage(start!.raw), deps); // delivery B of the same message
    await flush();
    release();
    await Promise.allSettled([a, b]);
    assert.equal(deps.graph.startCalls.length, 2, 'the throttled call and one accepted export');
  });

  it('a failure racing the finisher never leaves manifest.json in a failed run', async () => {
    const deps = makeDeps(USD);
    const runId = await startUsd(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: ['a.json.gz'] })));
    const poll = deps.queue.takeStatus()[0];
    assert.ok(poll !== undefined);
    deps.clock.advanceSeconds(poll.delaySeconds);
    await pollExportStatus(parseStatusMessage(poll.raw), deps);
    const [copy] = deps.queue.takeCopies();
    const write = deps.destination.writeJson.bind(deps.destination);
    let raced = false;
    deps.destination.writeJson = async (path, value, condition) => {
      if (path.endsWith('/manifest.json') && !raced) {
        raced = true;
        // Between the finisher's read of the run and its manifest write, a poisoned message of the run lands.
        await handlePoisonMessage('export-status-poison', poll.raw, deps);
      }
      return write(path, value, condition);
    };
    await copyExportBlob(parseCopyMessage(copy!), deps).catch(() => undefined);
    const run = runOf(deps, runId);
    const manifest = deps.destination.json(`${run.path}/manifest.json`);
    assert.ok(raced);
    assert.ok(!(manifest !== undefined && run.status === 'failed'), 'a folder with manifest.json reported failed');
    assert.equal(run.status, 'succeeded');
    assert.equal(deps.telemetry.failed.length, 0);
    assert.equal(deps.telemetry.completed.length, 1);
  });

  it('a host-storage outage of a few seconds right after Graph accepted costs no second export', async () => {
    const deps = makeDeps(USD);
    const update = deps.ledger.updateRun.bind(deps.ledger);
    const send = deps.queue.sendStatus.bind(deps.queue);
    let updateFailures = 0;
    let sendFailures = 0;
    deps.ledger.updateRun = async (id, fields, etag) => {
      if (fields.status === 'waiting' && updateFailures++ < 5) throw storageUnavailable();
      return update(id, fields, etag);
    };
    deps.queue.sendStatus = async (message, delay) => {
      if (sendFailures++ < 5) throw storageUnavailable();
      return send(message, delay);
    };
    const runId = await startUsd(deps);
    deps.ledger.updateRun = update;
    deps.queue.sendStatus = send;
    assert.equal(runOf(deps, runId).status, 'waiting');
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    assert.deepEqual((await drain(deps, deps.queue)).errors, []);
    assert.equal(runOf(deps, runId).status, 'succeeded');
    assert.equal(deps.graph.startCalls.length, 1);
  });

  it('duplicated status checks during a 429 storm collapse into one chain', async () => {
    const deps = makeDeps(USD);
    await startUsd(deps);
    const first = deps.queue.takeStatus()[0];
    assert.ok(first !== undefined);
    deps.graph.scriptOperation(
      '*',
      new ExportError('GRAPH_THROTTLED', '429', { retryable: true, retryAfterSeconds: 30 }),
    );
    let pending = [first.raw, first.raw];
    for (let round = 0; round < 5; round++) {
      for (const raw of pending) await pollExportStatus(parseStatusMessage(raw), deps).catch(() => undefined);
      pending = deps.queue.takeStatus().map((s) => s.raw);
    }
    assert.equal(pending.length, 1, `status checks in flight after 5 rounds: ${pending.length}`);
  });

  it('a run completed from an older manifest.json is announced once, even with a supervisor sweep meanwhile', async () => {
    const deps = makeDeps(USD);
    const runId = await startUsd(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames: ['a.json.gz'] })));
    await deliverNextStatus(deps);
    const [copy] = deps.queue.takeCopies();
    const write = deps.destination.writeJson.bind(deps.destination);
    deps.destination.writeJson = async (path, value, condition) => {
      const ok = await write(path, value, condition);
      if (path.endsWith('/manifest.json')) throw new Error('process died after manifest.json');
      return ok;
    };
    await copyExportBlob(parseCopyMessage(copy!), deps).catch(() => undefined);
    deps.destination.writeJson = write;
    deps.clock.advanceSeconds(20 * 60); // the redelivery comes 20 minutes later
    const flushTelemetry = deps.telemetry.flush.bind(deps.telemetry);
    let swept = false;
    deps.telemetry.flush = async () => {
      if (!swept) {
        swept = true;
        await superviseRuns(deps); // a sweep on another host while this process announces the end
      }
      return flushTelemetry();
    };
    await copyExportBlob(parseCopyMessage(copy!), deps);
    assert.equal(runOf(deps, runId).status, 'succeeded');
    assert.equal(deps.telemetry.completed.length, 1, 'one ExportRunCompleted');
  });
});
