import { crashPoint } from '../crashPoints';
import { classifyError, errorMessage } from '../errors';
import { redact } from '../redact';
import { type CurationSupervisionReport, superviseCurations } from './curateExport';
import type { PipelineDeps } from './deps';
import { checkGraphEndpoint, resumeCopying } from './pollExportStatus';
import type { RunRecord, RunStatus, UnreadableRun } from './ports';
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
  /**
   * Runs the sweep could not look at (an error each, logged), ledger rows it cannot read as a run among them (each
   * also an ExportRunUnreadable event).
   */
  errors: number;
  /** What the sweep did to curations (EXPORT_CURATION on). */
  curations?: CurationSupervisionReport | undefined;
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
async function announceLostEnds(
  deps: PipelineDeps,
  now: Date,
  graceMs: number,
  unreadable: (row: UnreadableRun) => void,
): Promise<number> {
  let sent = 0;
  // Whatever its age: a run may end long after it started (the supervisor fails a forgotten one weeks later).
  for (const run of await deps.ledger.listRuns({ unannounced: true }, unreadable)) {
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

/**
 * The supervisor (timer superviseRuns, every 10 minutes). A queue message can be lost to a crash at the wrong
 * moment (between a ledger write and the message that follows it); nothing else would then move the run. For
 * every run not yet ended, the sweep compares the time its next step was due (`nextCheckAt`, else its last
 * update) with EXPORT_STALL_MINUTES: an overdue run is resumed (its start, status check or missing copies sent
 * again, its completion tried), at most EXPORT_MAX_RESUMES times; past that, or past the maximum wait plus the
 * copy allowance in all, it fails with RUN_STALLED and ExportRunFailed. Each resume is an ExportRunResumed event.
 * `stallMinutes` overrides the setting; `runIds` narrows the sweep; `ownerGone` (the command line, when it owns the
 * host storage and so knows that no other process works on its runs) resumes every run now, even one whose next
 * step is not due yet: the process that would have taken that step is gone (see src/local/resumeInterrupted.ts).
 */
export async function superviseRuns(
  deps: PipelineDeps,
  options: { stallMinutes?: number; runIds?: readonly string[]; ownerGone?: boolean; ownerGoneBefore?: string } = {},
): Promise<SupervisionReport> {
  const now = deps.clock.now();
  const report: SupervisionReport = { checked: 0, resumed: 0, ended: 0, announced: 0, errors: 0 };
  const runs: RunRecord[] = [];
  // Every run not ended, whatever its age: one the sweeps missed for weeks (the app stopped, a clock far off) is
  // failed now rather than left in flight for ever, holding its series' start lock. A row this version cannot read
  // is skipped, not thrown: it must not keep every other run from being looked after.
  const unreadable = new Map<string, UnreadableRun>();
  const skip = (row: UnreadableRun) => unreadable.set(row.runId, row);
  for (const status of ACTIVE) runs.push(...(await deps.ledger.listRuns({ status }, skip)));
  const wanted = options.runIds === undefined ? undefined : new Set(options.runIds);
  for (const run of runs) {
    if (wanted !== undefined && !wanted.has(run.runId)) continue;
    report.checked += 1;
    try {
      const outcome = await superviseOne(
        deps,
        run.runId,
        options.stallMinutes,
        options.ownerGone === true ? (options.ownerGoneBefore ?? 'always') : undefined,
      );
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
  report.announced = await announceLostEnds(deps, now, announceGraceMs(deps.config.supervision.stallMinutes), skip);
  for (const row of unreadable.values()) {
    if (wanted !== undefined && !wanted.has(row.runId)) continue;
    report.errors += 1;
    deps.logger
      .child({ runId: row.runId })
      .error(
        `RUN_UNREADABLE: ${row.problem} The supervisor cannot resume, fail or announce this run and skips it on every sweep until the row is fixed or deleted (a value written by a newer version of the app: deploy that version again).`,
      );
    deps.telemetry.runUnreadable(row);
  }
  const curations = await superviseCurations(deps, options).catch((error: unknown) => {
    report.errors += 1;
    deps.logger.error(`The supervisor could not look after curations: ${redact(errorMessage(error))}`);
    return undefined;
  });
  const curated =
    curations === undefined
      ? ''
      : ` Curations: ${curations.started} started, ${curations.resumed} resumed, ${curations.failed} stalled, ${curations.announced} lost end event(s) sent, ${curations.swept} left staging folder(s) emptied.`;
  if (curations !== undefined) report.curations = curations;
  const line = `Supervisor: ${report.checked} run(s) in flight, ${report.resumed} resumed, ${report.ended} ended (stalled, or a final error), ${report.announced} lost end event(s) sent, ${report.errors} error(s).${
    curations !== undefined &&
    curations.started + curations.resumed + curations.failed + curations.announced + curations.swept > 0
      ? curated
      : ''
  }`;
  const curationWork =
    curations === undefined ? 0 : curations.started + curations.resumed + curations.failed + curations.announced;
  if (report.resumed + report.ended + report.announced + report.errors + curationWork > 0) deps.logger.warn(line);
  else deps.logger.info(line);
  return report;
}

async function superviseOne(
  deps: PipelineDeps,
  runId: string,
  stallMinutesOverride: number | undefined,
  /** The caller's process took over from a stopped one: 'always', or the instant before which a write is not its own. */
  ownerGoneBefore: string | undefined,
): Promise<'resumed' | 'ended' | undefined> {
  const { stallMinutes, maxResumes, maxRunHours } = deps.config.supervision;
  const stallMs = (stallMinutesOverride ?? stallMinutes) * 60_000;
  return withRun(deps, runId, async (current) => {
    const run = current.value;
    if (isTerminal(run.status)) return undefined;
    // Read as it is now (the resume below is conditional on this read): a run written since the caller's process
    // started is in that process's own hands (its host took a left-over message), so it is not taken for abandoned.
    const ownerGone =
      ownerGoneBefore !== undefined &&
      (ownerGoneBefore === 'always' || Date.parse(run.updatedAt) < Date.parse(ownerGoneBefore));
    const now = deps.clock.now();
    const ageMs = now.getTime() - Date.parse(run.startedAt);
    const lastMove = Math.max(Date.parse(run.nextCheckAt ?? run.updatedAt), Date.parse(run.updatedAt));
    const overdueMs = now.getTime() - lastMove;
    const tooOld = ageMs > maxRunHours * 3600_000;
    if (overdueMs <= stallMs && !tooOld && !ownerGone) return undefined;
    // Resumed here means finished against this host's Graph: a run of another GRAPH_BASE_URL fails instead.
    checkGraphEndpoint(deps, run);
    const resumes = run.resumes ?? 0;
    const log = runLogger(deps, run);
    // A resume because the command that ran the run stopped (Ctrl-C, a kill) is the user's doing, not a step that
    // keeps stalling: it does not count against EXPORT_MAX_RESUMES, so interrupting a run a few times never fails it.
    const counted = !ownerGone;
    if (tooOld || (counted && resumes >= maxResumes)) {
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
      ...(counted ? { resumes: resumes + 1 } : {}),
      nextCheckAt: now.toISOString(),
    });
    if (marked === undefined) return { done: false };
    crashPoint('supervise.afterResume');
    const step = await resumeStep(deps, marked);
    const why = ownerGone
      ? 'the command that was running it stopped'
      : `its next step was ${Math.round(overdueMs / 60_000)} min overdue`;
    const count = counted ? `resume ${resumes + 1} of ${maxResumes}` : 'not counted against EXPORT_MAX_RESUMES';
    log.warn(`The supervisor resumed the run (${step}): ${why} (${count}).`);
    deps.telemetry.runResumed({ ...marked, status: marked.status }, { step, resumes: marked.resumes ?? 0 });
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
