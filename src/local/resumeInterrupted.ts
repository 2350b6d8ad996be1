import type { PipelineDeps } from '../pipeline/deps';
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
 *   own series are resumed once their next step is due (`stallMinutes` 0), so a live process's start is not doubled.
 * - `start` and `serve` on such storage: one sweep with the configured EXPORT_STALL_MINUTES, as the timer does.
 *
 * `runIds` narrows it to the runs the command finishes (`run`); without it, every run in flight (`start`, `serve`).
 */
export function resumeInterruptedRuns(
  deps: PipelineDeps,
  options: { ownsHostStorage: boolean; runIds?: readonly string[] },
): Promise<SupervisionReport> {
  const runIds = options.runIds === undefined ? {} : { runIds: options.runIds };
  if (options.ownsHostStorage) return superviseRuns(deps, { ...runIds, stallMinutes: 0, ownerGone: true });
  if (options.runIds !== undefined) return superviseRuns(deps, { ...runIds, stallMinutes: 0 });
  return superviseRuns(deps);
}
