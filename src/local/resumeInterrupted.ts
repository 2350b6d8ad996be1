import type { PipelineDeps } from '../pipeline/deps';
import { isTerminal } from '../pipeline/runStateMachine';
import { type SupervisionReport, superviseRuns } from '../pipeline/superviseRuns';

/**
 * Resumes, at a command's start-up, the runs an earlier command left in flight (killed, or stopped with Ctrl-C).
 * Their next step may have been lost with that process (a start it never sent, a status check it recorded and died
 * before sending), and the command line has no supervisor timer worth waiting for, so the supervisor's resume is
 * done now, through `superviseRuns` (conditional, counted against EXPORT_MAX_RESUMES, an ExportRunResumed event):
 *
 * - The command owns the host storage (the embedded Azurite of its data folder): no other process works on those
 *   runs, so every one is resumed at once, whatever its `nextCheckAt` says (`ownerGone`). A run that died between
 *   Graph's 202 and recording the operation asks Graph again: the documented window for a second export.
 * - `run` on host storage given in the settings (which a deployed app or another host may share): the runs of its
 *   own series are resumed once their next step is due (`stallMinutes` 0), so a live process's start is not doubled;
 *   those not due yet are looked at again when they are (`resumeOnceDue`).
 * - `start` and `serve` on such storage: one sweep with the configured EXPORT_STALL_MINUTES, as the timer does.
 *
 * `runIds` narrows it to the runs the command finishes (`run`); without it, every run in flight (`start`, `serve`).
 */
export function resumeInterruptedRuns(
  deps: PipelineDeps,
  options: {
    ownsHostStorage: boolean;
    runIds?: readonly string[];
    /**
     * When this command's process started (ISO). Its own host already takes the queue messages the stopped command
     * left behind: a run written since is in this process's hands and is not resumed at once (only when overdue),
     * so a start this process is making is never sent again beside it (a second Graph export).
     */
    processStartedAt?: string;
  },
): Promise<SupervisionReport> {
  const runIds = options.runIds === undefined ? {} : { runIds: options.runIds };
  if (options.ownsHostStorage) {
    const since = options.processStartedAt === undefined ? {} : { ownerGoneBefore: options.processStartedAt };
    return superviseRuns(deps, { ...runIds, ...since, stallMinutes: 0, ownerGone: true });
  }
  if (options.runIds !== undefined) return superviseRuns(deps, { ...runIds, stallMinutes: 0 });
  return superviseRuns(deps);
}

/**
 * `run` on shared host storage: each run not yet due at start-up is looked at again once its next step is due, and
 * resumed then if nothing moved it meanwhile (its `updatedAt` unchanged: no live process took that step). Once per
 * run; later stalls are the supervisor timer's. Resolves with the number of runs resumed.
 */
export async function resumeOnceDue(deps: PipelineDeps, runIds: readonly string[]): Promise<number> {
  const resumed = await Promise.all(
    runIds.map(async (runId) => {
      const seen = (await deps.ledger.getRun(runId))?.value;
      if (seen === undefined || isTerminal(seen.status)) return 0;
      const wait = Date.parse(seen.nextCheckAt ?? seen.updatedAt) - deps.clock.now().getTime();
      if (wait <= 0) return 0; // due at start-up: the start-up sweep looked at it
      await deps.sleep(wait + 1000);
      const now = (await deps.ledger.getRun(runId))?.value;
      if (now === undefined || isTerminal(now.status) || now.updatedAt !== seen.updatedAt) return 0;
      return (await superviseRuns(deps, { runIds: [runId], stallMinutes: 0 })).resumed;
    }),
  );
  return resumed.reduce((a, b) => a + b, 0);
}
