/**
 * The command line as a user runs it: `node dist/src/local/cli.js <command>` in a temporary folder (its own
 * `.azurite/` data folder), with the embedded Azurite and emulator, and helpers to find its child processes.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CLI = join(__dirname, '..', '..', 'src', 'local', 'cli.js');

export interface CliProcess {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** What the command wrote to standard output alone (the --json summary goes there; logs go to stderr). */
  stdout(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits until the output matches (fails with the output when the process ends first). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

const running: ChildProcess[] = [];

/** A temporary working folder for one test (its `.azurite/` is the command's data folder). */
export function tempWorkFolder(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `csp-${prefix}-`));
}

/** Settings a test's environment may carry that would make the command use something else than embedded defaults. */
function isOverride(name: string): boolean {
  return /^(AzureWebJobsStorage|DESTINATION_|GRAPH_|EXPORT_|APPLICATIONINSIGHTS_|LOCAL_)/.test(name);
}

export function spawnCli(args: string[], cwd: string, env: Record<string, string> = {}): CliProcess {
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!isOverride(name)) childEnv[name] = value;
  // Curation (DuckDB) only where a test asks for it (EXPORT_CURATION: 'on'): it costs seconds per run.
  Object.assign(
    childEnv,
    { NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost', EXPORT_CURATION: 'off' },
    env,
  );
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(child);
  let output = '';
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  return {
    child,
    pid: child.pid ?? 0,
    output: () => output,
    stdout: () => stdout,
    exited,
    async waitFor(pattern: RegExp, timeoutMs = 120_000): Promise<RegExpExecArray> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(output);
        if (match !== null) return match;
        if (ended) assert.fail(`the command ended before printing ${pattern}:\n${output}`);
        if (Date.now() > deadline) assert.fail(`no ${pattern} within ${timeoutMs} ms:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
  };
}

interface ProcessInfo {
  pid: number;
  ppid: number;
  cmdline: string;
}

function processes(): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (after[0] === 'Z') continue; // a zombie is dead
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      found.push({ pid: Number(entry), ppid: Number(after[1]), cmdline });
    } catch {
      // ended meanwhile
    }
  }
  return found;
}

/** Azurite processes started by this process id. */
export function azuriteChildren(pid: number): number[] {
  return processes()
    .filter((p) => p.ppid === pid && p.cmdline.includes('azurite'))
    .map((p) => p.pid);
}

/** Azurite processes (of anyone) whose data folder is inside `folder`. */
export function azuritesOn(folder: string): number[] {
  return processes()
    .filter((p) => p.cmdline.includes('azurite') && p.cmdline.includes(folder))
    .map((p) => p.pid);
}

export function isAlive(pid: number): boolean {
  return processes().some((p) => p.pid === pid);
}

/** Kills what the tests started and is still running, and removes a work folder. */
export function cleanUp(folders: string[]): void {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGKILL');
  }
  for (const folder of folders) {
    for (const pid of azuritesOn(folder)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(folder, { recursive: true, force: true });
  }
}
