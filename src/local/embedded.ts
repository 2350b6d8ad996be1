import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type EmulatorScenario,
  type PartnerBillingEmulator,
  startPartnerBillingEmulator,
} from '../emulator/partnerBillingEmulator';
import { ExportError } from '../errors';
import {
  type AzuriteInstance,
  DEV_STORE_ACCOUNT,
  exportSourceStorage,
  FINOPS_HUB_ACCOUNT,
  PARTNER_DEST_ACCOUNT,
  runningAzurite,
  startAzurite,
} from './azurite';
import { type FolderLock, type FolderOwner, lockDataFolder } from './dataFolderLock';
import { fileOperationStore } from './emulatorOperations';
import { hasSetting } from './settings';

/** What the command started to fill absent settings, and the settings it filled. */
export interface EmbeddedServices {
  azurite: AzuriteInstance | undefined;
  emulator: PartnerBillingEmulator | undefined;
  /** Set when this command uses the Azurite of another running command (see `attach`). */
  attachedTo: FolderOwner | undefined;
  /** Settings filled in (only ones that were absent). */
  filled: Record<string, string>;
  /**
   * The host storage (ledger and queues) is the Azurite this command started and owns the data folder of: no other
   * process works on its runs, so a run found in flight was left by a command that stopped.
   */
  ownsHostStorage: boolean;
  /** Stops what this command started (never another command's Azurite) and releases the data folder. */
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Keep Azurite's data in this folder (git-ignored `.azurite/`); in memory when absent. */
  azuriteLocation?: string | undefined;
  /** Don't start the emulator even if GRAPH_BASE_URL is absent (e.g. `runs` only reads the ledger). */
  withoutEmulator?: boolean;
  /** The command, as another command names it when the data folder is busy. */
  command?: string;
  /**
   * When another running command owns the data folder: use its running Azurite (true, for read-only
   * commands such as `runs`), or refuse with a FolderBusyError (false, the default).
   */
  attach?: boolean;
  /** Aborting it while the services start stops what was started and rejects. */
  signal?: AbortSignal;
  /** Lines of the embedded emulator (one per request). */
  emulatorLog?: (line: string) => void;
  /** Notes for the user (e.g. a leftover Azurite stopped). */
  log?: (line: string) => void;
}

/** The default folder of Azurite's data for the command line. */
export function defaultAzuriteLocation(folder: string = process.cwd()): string {
  return join(folder, '.azurite');
}

/** The embedded emulator's data: small and quick; `LOCAL_EMULATOR_*` settings change it (tests, demos). */
export function embeddedScenario(values: Record<string, string | undefined>): Partial<EmulatorScenario> {
  const problems: string[] = [];
  const integer = (name: string, fallback: number, min: number): number => {
    const text = values[name];
    if (text === undefined || text.trim() === '') return fallback;
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min) {
      problems.push(`${name}: '${text}' is not accepted (an integer >= ${min}).`);
    }
    return value;
  };
  const scenario = {
    pollsBeforeSuccess: integer('LOCAL_EMULATOR_POLLS', 2, 0),
    retryAfterSeconds: 1,
    blobCount: integer('LOCAL_EMULATOR_BLOB_COUNT', 3, 1),
    rowsPerBlob: integer('LOCAL_EMULATOR_ROWS_PER_BLOB', 2000, 1),
  };
  if (problems.length > 0) throw new ExportError('CONFIG_INVALID', problems.join('\n'));
  return scenario;
}

const EMULATOR_PORT_FILE = 'emulator.json';

function rememberedEmulatorPort(folder: string): number {
  try {
    const port = (JSON.parse(readFileSync(join(folder, EMULATOR_PORT_FILE), 'utf8')) as { port?: unknown }).port;
    return typeof port === 'number' && Number.isSafeInteger(port) && port > 0 && port < 65536 ? port : 0;
  } catch {
    return 0;
  }
}

/**
 * The embedded emulator of a persisted data folder listens on the port it had last time and keeps its
 * operations in the folder: the operation URLs a ledger recorded stay valid across commands, so an
 * interrupted run resumes with the export Graph (the emulator) accepted.
 */
async function startEmbeddedEmulator(
  azurite: AzuriteInstance,
  scenario: Partial<EmulatorScenario>,
  folder: string | undefined,
  log: ((line: string) => void) | undefined,
  note: (line: string) => void,
): Promise<PartnerBillingEmulator> {
  const options = {
    storage: exportSourceStorage(azurite),
    scenario,
    ...(log === undefined ? {} : { log }),
    ...(folder === undefined ? {} : { operationStore: fileOperationStore(folder) }),
  };
  if (folder === undefined) return startPartnerBillingEmulator(options);
  const port = rememberedEmulatorPort(folder);
  let emulator: PartnerBillingEmulator;
  try {
    emulator = await startPartnerBillingEmulator({ ...options, port });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw error;
    note(
      `The emulator's port ${port} is in use; using another one. Runs interrupted earlier cannot reach their export and will fail.`,
    );
    emulator = await startPartnerBillingEmulator({ ...options, port: 0 });
  }
  const url = new URL(emulator.baseUrl);
  writeFileSync(join(folder, EMULATOR_PORT_FILE), JSON.stringify({ port: Number(url.port) }));
  return emulator;
}

/**
 * Embedded defaults (SPEC section 9): Azurite when host or destination storage is absent, the partner billing
 * emulator when GRAPH_BASE_URL is absent. Settings that are given are used exactly as given.
 *
 * With a data folder, one command at a time owns it (see dataFolderLock.ts): a second command uses the
 * owner's running Azurite (`attach`) or refuses; never two Azurite processes on one folder.
 */
export async function startEmbeddedServices(
  values: Record<string, string | undefined>,
  options: EmbeddedOptions = {},
): Promise<EmbeddedServices> {
  const filled: Record<string, string> = {};
  const needStorage = !hasSetting(values, 'AzureWebJobsStorage') || !hasSetting(values, 'DESTINATION_STORAGE');
  const needEmulator = !options.withoutEmulator && !hasSetting(values, 'GRAPH_BASE_URL');
  const note = options.log ?? (() => undefined);
  const folder = options.azuriteLocation;
  const scenario = needEmulator ? embeddedScenario(values) : {};
  let azurite: AzuriteInstance | undefined;
  let emulator: PartnerBillingEmulator | undefined;
  let lock: FolderLock | undefined;
  let attachedTo: FolderOwner | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      try {
        await emulator?.stop();
        await azurite?.stop();
      } finally {
        lock?.release();
      }
    })();
    return stopping;
  };
  try {
    if (needStorage || needEmulator) {
      if (folder !== undefined) {
        const taken = await lockDataFolder(folder, options.command ?? 'command', {
          attach: options.attach === true && !needEmulator,
          log: note,
        });
        if (taken.kind === 'owned') lock = taken.lock;
        else attachedTo = taken.owner;
      }
      options.signal?.throwIfAborted();
      if (attachedTo?.azurite !== undefined) {
        azurite = runningAzurite(attachedTo.azurite);
      } else {
        azurite = await startAzurite({
          ...(folder === undefined ? {} : { location: folder }),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
        lock?.update({
          azurite: {
            pid: azurite.pid,
            blobEndpoint: azurite.blobEndpoint,
            queueEndpoint: azurite.queueEndpoint,
            tableEndpoint: azurite.tableEndpoint,
          },
        });
      }
    }
    if (azurite !== undefined && !hasSetting(values, 'AzureWebJobsStorage')) {
      filled['AzureWebJobsStorage'] = azurite.connectionString(DEV_STORE_ACCOUNT.name);
    }
    if (azurite !== undefined && !hasSetting(values, 'DESTINATION_STORAGE')) {
      filled['DESTINATION_STORAGE'] = azurite.connectionString(PARTNER_DEST_ACCOUNT.name);
    }
    // A FinOps hub on the development storage means this Azurite's hub account (its ports are not the default ones).
    if (azurite !== undefined && /^UseDevelopmentStorage=true;?$/i.test(values['FINOPS_HUB_STORAGE']?.trim() ?? '')) {
      filled['FINOPS_HUB_STORAGE'] = azurite.connectionString(FINOPS_HUB_ACCOUNT.name);
    }
    if (needEmulator && azurite !== undefined) {
      options.signal?.throwIfAborted();
      emulator = await startEmbeddedEmulator(azurite, scenario, folder, options.emulatorLog, note);
      lock?.update({ emulator: { baseUrl: emulator.baseUrl } });
      filled['GRAPH_BASE_URL'] = emulator.baseUrl;
      filled['GRAPH_CA_CERT_FILE'] = emulator.caCertPath;
      // The emulator also serves the Partner Center invoices list (invoice discovery), by the same loopback rule.
      if (!hasSetting(values, 'PARTNER_CENTER_BASE_URL'))
        filled['PARTNER_CENTER_BASE_URL'] = emulator.partnerCenterBaseUrl;
      if (!hasSetting(values, 'EXPORT_CURRENCIES')) filled['EXPORT_CURRENCIES'] = 'USD,EUR';
      if (!hasSetting(values, 'EXPORT_POLL_INITIAL_SECONDS')) filled['EXPORT_POLL_INITIAL_SECONDS'] = '1';
      if (!hasSetting(values, 'EXPORT_POLL_MAX_SECONDS')) filled['EXPORT_POLL_MAX_SECONDS'] = '5';
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const ownsHostStorage = attachedTo === undefined && filled['AzureWebJobsStorage'] !== undefined;
  return { azurite, emulator, attachedTo, filled, ownsHostStorage, stop };
}
