/**
 * Ctrl-C and SIGTERM for the command line: at any moment, stop what the command started (the local host
 * first, which hands its in-flight queue messages back, then the emulator and Azurite), release the data
 * folder and exit. A second signal exits at once (Azurite is then killed by the exit hook of its start).
 */
export interface Shutdown {
  /** Aborted when a signal arrives (starts in progress listen to it). */
  readonly signal: AbortSignal;
  /** True once a signal arrived. */
  readonly stopping: boolean;
  /** Exit code after a signal (default 130 for SIGINT, 143 for SIGTERM); e.g. 0 once a command only serves. */
  exitCode: number | undefined;
  /** Runs first when a signal arrives (e.g. to stop progress bars before the stop messages). */
  beforeStop: (() => void) | undefined;
  /**
   * Runs a start step; what it starts is stopped on a signal by `stopper` (last started, first stopped).
   * A signal that arrives during the step waits for the step to settle before stopping.
   */
  step<T>(start: () => Promise<T>, stopper?: (value: T) => () => Promise<unknown>): Promise<T>;
  /** Stops what a step registered, in reverse order, without exiting (the normal end of a command). */
  stopAll(): Promise<void>;
  /** Removes the signal handlers. */
  dispose(): void;
}

const SIGNAL_CODES: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

let signalled = false;

/** Has a signal started a shutdown (whose handler then exits the process)? */
export function shuttingDown(): boolean {
  return signalled;
}

export function installShutdown(
  log: (line: string) => void,
  exit: (code: number) => void = (code) => process.exit(code),
): Shutdown {
  const controller = new AbortController();
  const stoppers: Array<() => Promise<unknown>> = [];
  const pending = new Set<Promise<unknown>>();
  let received: NodeJS.Signals | undefined;
  let stoppingAll: Promise<void> | undefined;

  const stopAll = (): Promise<void> => {
    stoppingAll ??= (async () => {
      // Steps still starting finish (or fail) first, so that what they started is registered.
      while (pending.size > 0) await Promise.allSettled([...pending]);
      while (stoppers.length > 0) {
        const stop = stoppers.pop()!;
        try {
          await stop();
        } catch (error) {
          log(`While stopping: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    })();
    return stoppingAll;
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (received !== undefined) {
      log(`Received ${signal} again: exiting now.`);
      exit(shutdown.exitCode ?? SIGNAL_CODES[signal] ?? 1);
      return;
    }
    received = signal;
    signalled = true;
    // After SIGHUP nobody may read the terminal any more: a failed write must not stop the cleanup.
    for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
    try {
      shutdown.beforeStop?.();
    } catch {
      // only cosmetic
    }
    log(`Received ${signal}: handing unfinished queue messages back and stopping (again to force)…`);
    controller.abort(new Error(`Stopped by ${signal}.`));
    void stopAll().finally(() => exit(shutdown.exitCode ?? SIGNAL_CODES[signal] ?? 1));
  };
  const onInt = (): void => onSignal('SIGINT');
  const onTerm = (): void => onSignal('SIGTERM');
  const onHup = (): void => onSignal('SIGHUP'); // the terminal closed
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onHup);

  const shutdown: Shutdown = {
    signal: controller.signal,
    get stopping() {
      return received !== undefined;
    },
    exitCode: undefined,
    beforeStop: undefined,
    async step<T>(start: () => Promise<T>, stopper?: (value: T) => () => Promise<unknown>): Promise<T> {
      if (received !== undefined) throw controller.signal.reason;
      const running = start().then((value) => {
        if (stopper !== undefined) stoppers.push(stopper(value));
        return value;
      });
      pending.add(running);
      try {
        return await running;
      } finally {
        pending.delete(running);
      }
    },
    stopAll,
    dispose() {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      process.off('SIGHUP', onHup);
    },
  };
  return shutdown;
}
