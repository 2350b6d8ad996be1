import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';

/** A storage account served by the local Azurite. The keys are development keys, not secrets (like Azurite's own). */
export interface AzuriteAccount {
  name: string;
  key: string;
}

/** A running Azurite child process. */
export interface AzuriteInstance {
  /** Process id of the Azurite child (the leader of its own process group). */
  pid: number;
  /** Blob service root, without an account: `http://127.0.0.1:PORT`. */
  blobEndpoint: string;
  /** Queue service root, without an account. */
  queueEndpoint: string;
  /** Table service root, without an account. */
  tableEndpoint: string;
  accounts: AzuriteAccount[];
  /** Connection string with IP-style endpoints (`http://127.0.0.1:PORT/<account>`) for Blob, Queue and Table. */
  connectionString(account: string): string;
  /** The account's key (throws for an account Azurite was not started with). */
  accountKey(account: string): string;
  /** Stops Azurite (its whole process group) and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  /** Keep data in this folder (`--location`); without it Azurite keeps everything in memory. */
  location?: string;
  /** How long to wait for the three services to listen. */
  startTimeoutMs?: number;
  /** Aborting it while Azurite starts stops Azurite and rejects (Ctrl-C during the start). */
  signal?: AbortSignal;
}

/** Azurite's well-known development account. */
export const DEV_STORE_ACCOUNT: AzuriteAccount = {
  name: 'devstoreaccount1',
  key: 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==',
};

/** The partner's destination account. A fixed development key, so a persisted `.azurite/` folder keeps working. */
export const PARTNER_DEST_ACCOUNT: AzuriteAccount = {
  name: 'partnerdest',
  key: Buffer.from('csp-unbilled-export/partnerdest/development-key/not-a-secret/0001').toString('base64'),
};

/** The account that plays Microsoft's export storage (written by the partner billing emulator). */
export const MS_BILLING_ACCOUNT: AzuriteAccount = {
  name: 'msbilling',
  key: Buffer.from('csp-unbilled-export/msbilling/development-key/not-a-secret/00001').toString('base64'),
};

/**
 * A FinOps hub's storage account, for the local hub drop-in (`FINOPS_HUB_STORAGE=UseDevelopmentStorage=true` on the
 * command line) and its tests.
 */
export const FINOPS_HUB_ACCOUNT: AzuriteAccount = {
  name: 'finopshub',
  key: Buffer.from('csp-unbilled-export/finopshub/development-key/not-a-secret/000001').toString('base64'),
};

/** Microsoft's export storage on a running Azurite (the account the partner billing emulator writes to). */
export function exportSourceStorage(azurite: Pick<AzuriteInstance, 'blobEndpoint' | 'accountKey'>): {
  blobEndpoint: string;
  accountName: string;
  accountKey: string;
} {
  return {
    blobEndpoint: `${azurite.blobEndpoint}/${MS_BILLING_ACCOUNT.name}`,
    accountName: MS_BILLING_ACCOUNT.name,
    accountKey: azurite.accountKey(MS_BILLING_ACCOUNT.name),
  };
}

/** Host storage (queues, tables), the destination, Microsoft's export storage, and a FinOps hub's storage. */
export const AZURITE_ACCOUNTS: readonly AzuriteAccount[] = [
  DEV_STORE_ACCOUNT,
  PARTNER_DEST_ACCOUNT,
  MS_BILLING_ACCOUNT,
  FINOPS_HUB_ACCOUNT,
];

const PROXY_VARIABLES = ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy'];
const LISTENING = /Azurite (Blob|Queue|Table) service is successfully listening at (https?:\/\/[^\s]+)/;
const OUTPUT_LIMIT = 64 * 1024;
const STOP_GRACE_MS = 5000;

/**
 * Runs Azurite's entry point in a process that stops itself (SIGTERM, so Azurite saves and closes its
 * databases: it autosaves only every 5 s) when its parent is gone: a command killed with SIGKILL leaves no
 * Azurite behind for long, and loses no queue message or ledger row.
 */
const PARENT_WATCH = `
const parent = process.ppid;
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
const watch = setInterval(() => {
  if (process.ppid !== parent) {
    clearInterval(watch);
    // Nobody reads the pipes any more: Azurite's shutdown messages must not fail it before its databases are saved.
    for (const stream of [process.stdout, process.stderr]) stream.write = () => true;
    process.kill(process.pid, 'SIGTERM');
  }
}, 500);
watch.unref();
require(process.argv[1]);
`;

function azuriteEntryPoint(): string {
  return join(dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'azurite.js');
}

function azuriteEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of PROXY_VARIABLES) delete env[name];
  // An SQL metadata store cannot be combined with in-memory persistence, and the accounts are ours.
  delete env['AZURITE_DB'];
  env['NO_PROXY'] = '127.0.0.1,localhost';
  env['no_proxy'] = '127.0.0.1,localhost';
  env['AZURITE_ACCOUNTS'] = AZURITE_ACCOUNTS.map((account) => `${account.name}:${account.key}`).join(';');
  return env;
}

function appendBounded(buffer: string, chunk: string): string {
  const joined = buffer + chunk;
  return joined.length > OUTPUT_LIMIT ? joined.slice(joined.length - OUTPUT_LIMIT) : joined;
}

/** Sends a signal to the child's whole process group (it is started detached, as a group leader). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  signalGroup(child, 'SIGTERM');
  if (await waitForExit(child, STOP_GRACE_MS)) return;
  signalGroup(child, 'SIGKILL');
  await waitForExit(child, STOP_GRACE_MS);
}

/**
 * Starts Azurite 3.35 (the devDependency) as a child process on free loopback ports, with four accounts:
 * `devstoreaccount1` (host storage), `partnerdest` (destination), `msbilling` (Microsoft's export storage) and
 * `finopshub` (a FinOps hub's storage).
 * Throws, with Azurite's output, when it does not listen within the timeout: callers must never skip.
 */
export async function startAzurite(options: AzuriteOptions = {}): Promise<AzuriteInstance> {
  const timeoutMs = options.startTimeoutMs ?? 20_000;
  const args = [
    '-e',
    PARENT_WATCH,
    azuriteEntryPoint(),
    ...(options.location === undefined ? ['--inMemoryPersistence'] : ['--location', options.location]),
    '--skipApiVersionCheck',
    '--disableTelemetry',
    '--silent',
    '--blobHost',
    '127.0.0.1',
    '--queueHost',
    '127.0.0.1',
    '--tableHost',
    '127.0.0.1',
    '--blobPort',
    '0',
    '--queuePort',
    '0',
    '--tablePort',
    '0',
  ];
  const child = spawn(process.execPath, args, {
    env: azuriteEnvironment(),
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so stop() can signal the whole tree (and a Ctrl-C of the parent's
    // terminal does not kill it before the parent has stopped it in order).
    detached: true,
    windowsHide: true,
  });
  // Never leave an orphan behind when the parent exits without calling stop().
  const killOnExit = (): void => signalGroup(child, 'SIGKILL');
  process.once('exit', killOnExit);

  let stdout = '';
  let stderr = '';
  const endpoints = new Map<string, string>();
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');

  const ready = new Promise<void>((resolve, reject) => {
    let pending = '';
    const timer = setTimeout(() => {
      reject(new Error(`Azurite did not start listening within ${timeoutMs} ms.`));
    }, timeoutMs);
    child.stdout?.on('data', (chunk: string) => {
      stdout = appendBounded(stdout, chunk);
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const match = LISTENING.exec(line);
        if (match?.[1] !== undefined && match[2] !== undefined) endpoints.set(match[1], match[2]);
      }
      if (endpoints.size === 3) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (chunk: string) => {
      stderr = appendBounded(stderr, chunk);
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited before it was ready (code ${code ?? 'none'}, signal ${signal ?? 'none'}).`));
    });
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Error('Stopped while Azurite was starting.'));
    };
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.once('exit', () => options.signal?.removeEventListener('abort', onAbort));
  });

  try {
    await ready;
  } catch (error) {
    await terminate(child);
    process.off('exit', killOnExit);
    const reason = error instanceof Error ? error.message : String(error);
    if (options.signal?.aborted) throw new Error(reason, { cause: error });
    throw new Error(
      `Could not start Azurite (${args.slice(3).join(' ')}): ${reason}\n` +
        `Azurite stderr:\n${stderr.trim() || '(empty)'}\nAzurite stdout:\n${stdout.trim() || '(empty)'}`,
      { cause: error },
    );
  }
  // Keep draining the pipes so a chatty Azurite never blocks on a full pipe.
  child.stdout?.resume();

  const blobEndpoint = endpoints.get('Blob')!;
  const queueEndpoint = endpoints.get('Queue')!;
  const tableEndpoint = endpoints.get('Table')!;
  const accounts = AZURITE_ACCOUNTS.map((account) => ({ ...account }));

  let stopping: Promise<void> | undefined;
  return {
    ...describeAzurite({ pid: child.pid ?? 0, blobEndpoint, queueEndpoint, tableEndpoint }, accounts),
    stop(): Promise<void> {
      stopping ??= terminate(child).finally(() => {
        process.off('exit', killOnExit);
      });
      return stopping;
    },
  };
}

/** An Azurite another command started (found through its data folder's lock): stop() leaves it running. */
export function runningAzurite(endpoints: {
  pid: number;
  blobEndpoint: string;
  queueEndpoint: string;
  tableEndpoint: string;
}): AzuriteInstance {
  return {
    ...describeAzurite(
      endpoints,
      AZURITE_ACCOUNTS.map((account) => ({ ...account })),
    ),
    stop: () => Promise.resolve(),
  };
}

function describeAzurite(
  endpoints: { pid: number; blobEndpoint: string; queueEndpoint: string; tableEndpoint: string },
  accounts: AzuriteAccount[],
): Omit<AzuriteInstance, 'stop'> {
  const { pid, blobEndpoint, queueEndpoint, tableEndpoint } = endpoints;
  const accountKey = (name: string): string => {
    const account = accounts.find((candidate) => candidate.name === name);
    if (account === undefined) {
      throw new Error(`Azurite has no account '${name}' (accounts: ${accounts.map((a) => a.name).join(', ')}).`);
    }
    return account.key;
  };
  return {
    pid,
    blobEndpoint,
    queueEndpoint,
    tableEndpoint,
    accounts,
    accountKey,
    connectionString(name: string): string {
      const key = accountKey(name);
      return (
        `DefaultEndpointsProtocol=http;AccountName=${name};AccountKey=${key};` +
        `BlobEndpoint=${blobEndpoint}/${name};QueueEndpoint=${queueEndpoint}/${name};TableEndpoint=${tableEndpoint}/${name};`
      );
    },
  };
}
