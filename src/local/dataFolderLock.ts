import { existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

/**
 * One command at a time owns the embedded services of a data folder (`.azurite/`): the Azurite that
 * writes it and the emulator whose operations it keeps. The owner records itself in
 * `.azurite/csp-unbilled-export.lock.json` (created exclusively); another command either uses the
 * owner's running Azurite (`runs`) or refuses with a clear message. A lock whose owner is dead is stale:
 * the dead owner's Azurite, if still running, is stopped before the folder is taken over.
 */
export const LOCK_FILE = 'csp-unbilled-export.lock.json';

/** What the owner of a data folder records. */
export interface FolderOwner {
  pid: number;
  command: string;
  startedAt: string;
  azurite?: { pid: number; blobEndpoint: string; queueEndpoint: string; tableEndpoint: string };
  emulator?: { baseUrl: string };
}

/** A data folder held by another running command. */
export class FolderBusyError extends Error {
  override readonly name = 'FolderBusyError';
  constructor(
    message: string,
    readonly owner: FolderOwner,
  ) {
    super(message);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Is this process alive (and not a zombie)? */
export function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc (not Linux): signal 0 said alive
  }
}

/** Does something accept TCP connections at this URL's host and port? */
export function answers(url: string, timeoutMs = 1000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function readOwner(path: string): FolderOwner | undefined {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as Partial<FolderOwner>;
    if (typeof value.pid !== 'number' || typeof value.command !== 'string') return undefined;
    return value as FolderOwner;
  } catch {
    return undefined;
  }
}

/** Is this pid an Azurite process of this data folder (so that stopping it is safe)? */
function isAzuriteOf(pid: number, folder: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('azurite') && cmdline.includes(folder);
  } catch {
    return false;
  }
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** Stops the Azurite a dead owner left behind (it normally stops itself within a second). */
async function stopLeftover(owner: FolderOwner | undefined, folder: string, log: (line: string) => void) {
  const pid = owner?.azurite?.pid;
  if (pid === undefined || !isAlive(pid)) return;
  // It saves its databases as it stops: give it time, a kill would lose their last seconds.
  if (await waitForExit(pid, 15_000)) return;
  if (!existsSync('/proc/self/cmdline')) {
    throw new FolderBusyError(
      `Azurite (pid ${pid}) of a command that ended (pid ${owner?.pid}) may still be running on ${folder}; stop it, then try again.`,
      owner!,
    );
  }
  if (!isAzuriteOf(pid, folder)) return; // that pid is another process now
  log(`Stopping the Azurite (pid ${pid}) left running on ${folder} by a command that ended (pid ${owner?.pid}).`);
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
  }
  if (await waitForExit(pid, 15_000)) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // gone
  }
  await waitForExit(pid, 5000);
}

/** The lock of one data folder, held by this process. */
export interface FolderLock {
  /** Records what this command started, for a second command to find. */
  update(owner: Partial<FolderOwner>): void;
  /** Removes the lock (only if it is still this process's). Safe to call twice. */
  release(): void;
}

export type LockResult = { kind: 'owned'; lock: FolderLock } | { kind: 'attached'; owner: FolderOwner };

function describeOwner(owner: FolderOwner, folder: string): string {
  return `Another csp-unbilled-export command ("${owner.command}", pid ${owner.pid}, since ${owner.startedAt}) is using the embedded Azurite of ${folder}`;
}

/**
 * Takes the data folder for this command, or (with `attach`) finds the running command whose Azurite
 * this one may use. Refuses (FolderBusyError) when another command holds it and attaching is not allowed.
 */
export async function lockDataFolder(
  folder: string,
  command: string,
  options: { attach: boolean; log: (line: string) => void; waitMs?: number },
): Promise<LockResult> {
  mkdirSync(folder, { recursive: true });
  const path = join(folder, LOCK_FILE);
  const mine: FolderOwner = { pid: process.pid, command, startedAt: new Date().toISOString() };
  const deadline = Date.now() + (options.waitMs ?? 20_000);
  for (;;) {
    try {
      writeFileSync(path, JSON.stringify(mine), { flag: 'wx' });
      return { kind: 'owned', lock: ownedLock(path, mine) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = readOwner(path);
    if (owner !== undefined && owner.pid !== process.pid && isAlive(owner.pid)) {
      if (!options.attach) {
        throw new FolderBusyError(
          `${describeOwner(owner, folder)}. Two commands must not run their own Azurite on one data folder: stop that command first (Ctrl-C)` +
            `${owner.command === 'start' || owner.command === 'serve' ? ', or start exports through it: POST http://localhost:7071/api/exports (the port it printed)' : ''}; "runs" can be used meanwhile.`,
          owner,
        );
      }
      const azurite = owner.azurite;
      if (
        azurite !== undefined &&
        (await answers(azurite.blobEndpoint)) &&
        (await answers(azurite.queueEndpoint)) &&
        (await answers(azurite.tableEndpoint))
      ) {
        return { kind: 'attached', owner };
      }
      if (Date.now() > deadline) {
        throw new FolderBusyError(
          `${describeOwner(owner, folder)}, but its Azurite does not answer; try again when that command has started, or stop it.`,
          owner,
        );
      }
      await sleep(200); // the owner is still starting Azurite
      continue;
    }
    if (owner === undefined && Date.now() < deadline) {
      // Being written right now (or unreadable): look again shortly before calling it stale.
      await sleep(200);
      if (readOwner(path) !== undefined) continue;
    }
    await stopLeftover(owner, folder, options.log);
    // Move the stale lock aside atomically; if another command did so first, its new lock stays.
    const aside = `${path}.stale-${process.pid}`;
    try {
      renameSync(path, aside);
      const moved = readOwner(aside);
      if (moved !== undefined && owner !== undefined && moved.pid !== owner.pid) {
        renameSync(aside, path); // it was a fresh lock of another command: put it back
      } else {
        unlinkSync(aside);
      }
    } catch {
      // Already moved by another command: look again.
    }
  }
}

function ownedLock(path: string, mine: FolderOwner): FolderLock {
  let current: FolderOwner = { ...mine };
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.off('exit', release);
    try {
      if (readOwner(path)?.pid === process.pid) unlinkSync(path);
    } catch {
      // already gone
    }
  };
  process.once('exit', release);
  return {
    update(owner) {
      if (released) return;
      current = { ...current, ...owner };
      const temporary = `${path}.${process.pid}.tmp`;
      writeFileSync(temporary, JSON.stringify(current));
      renameSync(temporary, path);
    },
    release,
  };
}
