import { crashPoint } from '../crashPoints';
import { classifyError, errorMessage } from '../errors';
import { redact } from '../redact';
import type { PipelineDeps } from './deps';
import { checkGraphEndpoint, resumeCopying } from './pollExportStatus';
import type { RunRecord, RunStatus } from './ports';
import { advance, announceEnd, endRun, handleStepError, isTerminal, runLogger, withRun } from './runStateMachine';

/** What one sweep of the supervisor found and did. */
export interface SupervisionReport {
  /** Runs not yet ended that were looked at. */
  checked: number;
  /** Runs whose overdue next step was sent again. */
  resumed: number;
  /** Runs failed with RUN_STALLED or a final error met while resuming them (or completed from their manifest.json). */
  ended: number;
  /** Ended runs whose end event a crash had lost, sent now. */
  announced: number;
  /** Runs the sweep could not look at (an error each, logged). */
  errors: number;
}

/**
 * How long an ended run's own process gets to send its end event before the supervisor does: 2 minutes, or the
 * stall time when that is shorter, but never less than 15 s, longer than the telemetry flush may take (10 s,
 * DEFAULT_FLUSH_TIMEOUT_MS) plus the `announced` write, so that a live process still flushing is not doubled.
 */
export function announceGraceMs(stallMinutes: number): number {
  return Math.max(15_000, Math.min(2 * 60_000, stallMinutes * 60_000));
}

/** Sends the end event of runs that ended without it (their process died right after the ending write). */
async function announceLostEnds(deps: PipelineDeps, now: Date, graceMs: number): Promise<number> {
  const since = new Date(now.getTime() - LOOKBACK_DAYS * 86400_000).toISOString();
  let sent = 0;
  for (const run of await deps.ledger.listRuns({ unannounced: true, since })) {
    if (!isTerminal(run.status) || run.announced !== false) continue;
    // From the ending write itself (updatedAt), not completedAt, which may come from an older manifest.json.
    if (now.getTime() - Date.parse(run.updatedAt) < graceMs) continue;
    runLogger(deps, run).warn(
      `The run ended ${run.status} but its end event was not sent (its process stopped): sending it now.`,
    );
    await announceEnd(deps, run);
    sent += 1;
  }
  return sent;
}

const ACTIVE: readonly RunStatus[] = ['starting', 'waiting', 'copying'];

/** How far back a sweep looks for runs that have not ended (they are failed long before this). */
const LOOKBACK_DAYS = 14;

/**
 * The supervisor (timer superviseRuns, every 10 minutes). A queue message can be lost to a crash at the wrong
 * moment (between a ledger write and the message that follows it); nothing else would then move the run. For
 * every run not yet ended, the sweep compares the time its next step was due (`nextCheckAt`, else its last
 * update) with EXPORT_STALL_MINUTES: an overdue run is resumed (its start, status check or missing copies sent
 * again, its completion tried), at most EXPORT_MAX_RESUMES times; past that, or past the maximum wait plus the
 * copy allowance in all, it fails with RUN_STALLED and ExportRunFailed. Each resume is an ExportRunResumed event.
 * `stallMinutes` overrides the setting (the command line resumes its own interrupted runs at once with 0).
 */
export async function superviseRuns(
  deps: PipelineDeps,
  options: { stallMinutes?: number; runIds?: readonly string[] } = {},
): Promise<SupervisionReport> {
  const now = deps.clock.now();
  const since = new Date(now.getTime() - LOOKBACK_DAYS * 86400_000).toISOString();
  const report: SupervisionReport = { checked: 0, resumed: 0, ended: 0, announced: 0, errors: 0 };
  const runs: RunRecord[] = [];
  for (const status of ACTIVE) runs.push(...(await deps.ledger.listRuns({ status, since })));
  const wanted = options.runIds === undefined ? undefined : new Set(options.runIds);
  for (const run of runs) {
    if (wanted !== undefined && !wanted.has(run.runId)) continue;
    report.checked += 1;
    try {
      const outcome = await superviseOne(deps, run.runId, options.stallMinutes);
      if (outcome === 'resumed') report.resumed += 1;
      if (outcome === 'ended') report.ended += 1;
    } catch (error) {
      if (!classifyError(error).retryable) {
        // Resuming the run met a final error (a blob that keeps going missing, a missing role): the run fails with
        // it now, as the step's own handler would have failed it, instead of waiting to stall.
        try {
          await handleStepError(deps, run, error);
          report.ended += 1;
          continue;
        } catch {
          // Recording the failure failed for a transient reason: counted as an error below, the next sweep retries.
        }
      }
      report.errors += 1;
      runLogger(deps, run).error(`The supervisor could not look after this run: ${redact(errorMessage(error))}`);
    }
  }
  // The configured stall time, not an override: a command resuming its own runs at once must not announce the end
  // of a run another process is announcing right now.
  report.announced = await announceLostEnds(deps, now, announceGraceMs(deps.config.supervision.stallMinutes));
  const line = `Supervisor: ${report.checked} run(s) in flight, ${report.resumed} resumed, ${report.ended} ended (stalled, or a final error), ${report.announced} lost end event(s) sent, ${report.errors} error(s).`;
  if (report.resumed + report.ended + report.announced + report.errors > 0) deps.logger.warn(line);
  else deps.logger.info(line);
  return report;
}

async function superviseOne(
  deps: PipelineDeps,
  runId: string,
  stallMinutesOverride: number | undefined,
): Promise<'resumed' | 'ended' | undefined> {
  const { stallMinutes, maxResumes, maxRunHours } = deps.config.supervision;
  const stallMs = (stallMinutesOverride ?? stallMinutes) * 60_000;
  return withRun(deps, runId, async (current) => {
    const run = current.value;
    if (isTerminal(run.status)) return undefined;
    const now = deps.clock.now();
    const ageMs = now.getTime() - Date.parse(run.startedAt);
    const lastMove = Math.max(Date.parse(run.nextCheckAt ?? run.updatedAt), Date.parse(run.updatedAt));
    const overdueMs = now.getTime() - lastMove;
    const tooOld = ageMs > maxRunHours * 3600_000;
    if (overdueMs <= stallMs && !tooOld) return undefined;
    // Resumed here means finished against this host's Graph: a run of another GRAPH_BASE_URL fails instead.
    checkGraphEndpoint(deps, run);
    const resumes = run.resumes ?? 0;
    const log = runLogger(deps, run);
    if (tooOld || resumes >= maxResumes) {
      const why = tooOld
        ? `it has not ended ${(ageMs / 3600_000).toFixed(1)} h after it started (limit: EXPORT_MAX_WAIT_HOURS plus ${maxRunHours - deps.config.polling.maxWaitHours} h to copy)`
        : `its next step was overdue again after ${resumes} resume(s) (EXPORT_MAX_RESUMES=${maxResumes})`;
      const ended = await endRun(
        deps,
        runId,
        'failed',
        'RUN_STALLED',
        `The run stalled while ${run.status}: ${why}. The next run starts a new export.`,
      );
      if (ended === 'succeeded') log.info('The supervisor found manifest.json in place and completed the run.');
      return { done: true, value: 'ended' as const };
    }
    const marked = await advance(deps, current, run.status, {
      resumes: resumes + 1,
      nextCheckAt: now.toISOString(),
    });
    if (marked === undefined) return { done: false };
    crashPoint('supervise.afterResume');
    const step = await resumeStep(deps, marked);
    log.warn(
      `The supervisor resumed the run (${step}): its next step was ${Math.round(overdueMs / 60_000)} min overdue (resume ${resumes + 1} of ${maxResumes}).`,
    );
    deps.telemetry.runResumed({ ...marked, status: marked.status }, { step, resumes: resumes + 1 });
    return { done: true, value: 'resumed' as const };
  });
}

/** Sends the step a run was waiting for again. */
async function resumeStep(deps: PipelineDeps, run: RunRecord): Promise<string> {
  switch (run.status) {
    case 'starting':
      if ((run.startAttempts ?? 0) > 0) {
        runLogger(deps, run).warn(
          'The run never recorded Graph’s answer to its start (its process stopped there, or the host storage was unreachable for over a minute): asking Graph again, which may start a second export of the same data.',
        );
      }
      await deps.queue.sendStatus({ version: 1, kind: 'start', runId: run.runId, attempt: run.startAttempts ?? 0 }, 1);
      return 'start';
    case 'waiting':
      await deps.queue.sendStatus({ version: 1, kind: 'poll', runId: run.runId, attempt: run.polls }, 1);
      return 'status check';
    default: {
      const sent = await resumeCopying(deps, run, true);
      return `${sent} copy message(s)`;
    }
  }
}
