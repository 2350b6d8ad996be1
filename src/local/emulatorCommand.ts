import { DEFAULT_SCENARIO } from '../emulator/partnerBillingEmulator';
import type { CommandSpec } from './commandLine';

/**
 * The `emulator` command's description: its --help text and its flags (commandLine.ts checks them; the
 * emulator's own parser in src/emulator/main.ts then reads their values).
 */
export const EMULATOR_COMMAND: CommandSpec = {
  name: 'emulator',
  summary: 'the partner billing emulator (HTTPS), standalone; see docs/emulator.md',
  arguments: '[flags]',
  description: `Starts the partner billing emulator (HTTPS, self-signed CA) and serves until Ctrl-C.
Without --azurite-blob-endpoint it starts its own Azurite (in memory) to play Microsoft's storage.`,
  flags: [
    { name: 'port', value: 'N', description: 'HTTPS port on 127.0.0.1 (default: a free port)' },
    { name: 'blob-count', value: 'N', description: `blobs per export (default ${DEFAULT_SCENARIO.blobCount})` },
    { name: 'rows-per-blob', value: 'N', description: `JSON lines per blob (default ${DEFAULT_SCENARIO.rowsPerBlob})` },
    {
      name: 'seed',
      value: 'N',
      description: `data seed: same seed, same bytes and eTag (default ${DEFAULT_SCENARIO.seed})`,
    },
    {
      name: 'dialect',
      value: 'D',
      description:
        'inline (the manifest inline, as the live service) or navigationLink (behind a link,\nas documented)',
    },
    {
      name: 'polls',
      value: 'N',
      description: `operation GETs answering notStarted/running before success (default ${DEFAULT_SCENARIO.pollsBeforeSuccess})`,
    },
    {
      name: 'retry-after',
      value: 'S',
      description: `Retry-After seconds on running operations, 0 = none (default ${DEFAULT_SCENARIO.retryAfterSeconds})`,
    },
    {
      name: 'sas-lifetime',
      value: 'S',
      description: `lifetime of the manifest SAS tokens in seconds (default ${DEFAULT_SCENARIO.sasLifetimeSeconds})`,
    },
    { name: 'outcome', value: 'O', description: 'succeeded, noData or failed (default succeeded)' },
    { name: 'api-version', value: 'V', description: 'v1.0 or beta: version of the printed base URL (both are served)' },
    {
      name: 'azurite-blob-endpoint',
      value: 'URL',
      description: 'use this Azurite account instead, e.g. http://127.0.0.1:10000/msbilling',
    },
    {
      name: 'azurite-account',
      value: 'NAME',
      description: 'its account name (default: the last path segment of the endpoint)',
    },
    { name: 'azurite-key', value: 'BASE64', description: 'its account key' },
    { name: 'quiet', description: 'do not print one line per request' },
  ],
  examples: ['npm run cli -- emulator', 'npm run cli -- emulator --port 8443 --blob-count 8 --outcome noData --quiet'],
  exitCodes: `Exit codes: 0 stopped by Ctrl-C (or SIGTERM); 1 the emulator or its Azurite failed; 2 bad flags or a
taken port.`,
};
