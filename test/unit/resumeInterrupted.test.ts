/**
 * What the command line does at start-up with runs an earlier command left in flight (src/local/resumeInterrupted.ts):
 * the supervisor's resume, at once when the command owns the host storage, over the in-memory fakes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resumeInterruptedRuns, resumeOnceDue } from '../../src/local/resumeInterrupted';
import { pollExportStatus } from '../../src/pipeline/pollExportStatus';
import { startExports } from '../../src/pipeline/startExports';
import { drain, type FakeDeps, makeDeps, makeManifest, succeeded } from '../support/fakes';

/** A USD run whose first status check was recorded (due in 30 s) but lost with the process that was to send it. */
async function runWithLostCheck(deps: FakeDeps): Promise<string> {
  const [started] = await startExports({ trigger: 'manual', currencies: ['USD'], billingPeriods: ['current'] }, deps);
  assert.ok(started !== undefined && started.runId !== '');
  assert.equal(started.status, 'waiting');
  deps.queue.takeStatus();
  return started.runId;
}

const SETTINGS = { env: { EXPORT_CURRENCIES: 'USD', EXPORT_STALL_MINUTES: '30', EXPORT_POLL_INITIAL_SECONDS: '30' } };

describe('runs left in flight by a command that stopped', () => {
  it('are resumed at once, before their next step is due, by a command that owns the host storage, and finish', async () => {
    const deps = makeDeps(SETTINGS);
    const runId = await runWithLostCheck(deps);
    const report = await resumeInterruptedRuns(deps, { ownsHostStorage: true, runIds: [runId] });
    assert.equal(report.resumed, 1);
    assert.equal(deps.telemetry.resumed.length, 1);
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    assert.deepEqual((await drain(deps, deps.queue)).errors, []);
    assert.equal(deps.ledger.runs.get(runId)?.value.status, 'succeeded');
  });

  it('are left to the process that scheduled their next step until it is due, then resumed, when run shares the host storage', async () => {
    const deps = makeDeps(SETTINGS);
    const runId = await runWithLostCheck(deps);
    assert.equal((await resumeInterruptedRuns(deps, { ownsHostStorage: false, runIds: [runId] })).resumed, 0);
    assert.equal(deps.queue.pendingStatus.length, 0, 'nothing sent before the check is due');
    deps.sleep = async (ms) => deps.clock.advanceSeconds(ms / 1000);
    assert.equal(await resumeOnceDue(deps, [runId]), 1);
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    assert.deepEqual((await drain(deps, deps.queue)).errors, []);
    assert.equal(deps.ledger.runs.get(runId)?.value.status, 'succeeded');
  });

  it('are not resumed when due if another process moved them meanwhile, when run shares the host storage', async () => {
    const deps = makeDeps(SETTINGS);
    const runId = await runWithLostCheck(deps);
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    let waited = 0;
    deps.sleep = async (ms) => {
      waited += ms;
      deps.clock.advanceSeconds(ms / 1000);
      // The live process that scheduled the check takes it while the command waits.
      await pollExportStatus({ version: 1, kind: 'poll', runId, attempt: 0 }, deps);
      deps.clock.advanceSeconds(5);
    };
    assert.equal(await resumeOnceDue(deps, [runId]), 0);
    assert.ok(waited >= 30_000, 'it waited until the check was due');
    assert.equal(deps.telemetry.resumed.length, 0);
  });

  it('are resumed by start and serve on shared host storage only once overdue by EXPORT_STALL_MINUTES, as by the timer', async () => {
    const deps = makeDeps(SETTINGS);
    await runWithLostCheck(deps);
    deps.clock.advanceSeconds(60);
    assert.equal((await resumeInterruptedRuns(deps, { ownsHostStorage: false })).resumed, 0);
    deps.clock.advanceSeconds(30 * 60);
    assert.equal((await resumeInterruptedRuns(deps, { ownsHostStorage: false })).resumed, 1);
  });

  it('are resumed however often the command was interrupted: a stopped command does not count against EXPORT_MAX_RESUMES', async () => {
    const deps = makeDeps(SETTINGS);
    const runId = await runWithLostCheck(deps);
    for (let interruption = 1; interruption <= 5; interruption++) {
      const report = await resumeInterruptedRuns(deps, { ownsHostStorage: true, runIds: [runId] });
      assert.equal(report.resumed, 1, `interruption ${interruption} resumed the run`);
      assert.equal(report.ended, 0, `interruption ${interruption} did not fail the run`);
      deps.queue.takeStatus();
    }
    assert.equal(deps.ledger.runs.get(runId)?.value.status, 'waiting');
    assert.equal(deps.ledger.runs.get(runId)?.value.resumes ?? 0, 0);
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    await resumeInterruptedRuns(deps, { ownsHostStorage: true, runIds: [runId] });
    assert.deepEqual((await drain(deps, deps.queue)).errors, []);
    assert.equal(deps.ledger.runs.get(runId)?.value.status, 'succeeded');
  });

  it('are left alone when this process has written them since it started (its own host took a left-over message), so no start is sent twice', async () => {
    const deps = makeDeps(SETTINGS);
    const runId = await runWithLostCheck(deps);
    const writtenAt = Date.parse(deps.ledger.runs.get(runId)!.value.updatedAt);
    const startedBefore = new Date(writtenAt - 1000).toISOString();
    const report = await resumeInterruptedRuns(deps, {
      ownsHostStorage: true,
      runIds: [runId],
      processStartedAt: startedBefore,
    });
    assert.equal(report.resumed, 0, 'a run this process moved is not taken for abandoned');
    assert.equal(deps.queue.pendingStatus.length, 0);
    const startedAfter = new Date(writtenAt + 1000).toISOString();
    const later = await resumeInterruptedRuns(deps, {
      ownsHostStorage: true,
      runIds: [runId],
      processStartedAt: startedAfter,
    });
    assert.equal(later.resumed, 1, 'a run last written before this process started is resumed at once');
  });

  it('are not touched when they are not the command’s own', async () => {
    const deps = makeDeps(SETTINGS);
    await runWithLostCheck(deps);
    assert.equal((await resumeInterruptedRuns(deps, { ownsHostStorage: true, runIds: ['another'] })).resumed, 0);
  });
});
