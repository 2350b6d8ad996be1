/**
 * The command line's help, flag errors and settings checks, without any service: everything here is refused or
 * answered before Azurite, the emulator or the host would start.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, createServer } from 'node:net';
import { describe, it } from 'node:test';
import { EMULATOR_FLAGS } from '../../src/emulator/main';
import { ExportError, isExportError } from '../../src/errors';
import { checkRunSettings, main } from '../../src/local/cli';
import { describeFailure, EXIT_CODES_TEXT } from '../../src/local/commandLine';
import { FolderBusyError } from '../../src/local/dataFolderLock';
import { EMULATOR_COMMAND } from '../../src/local/emulatorCommand';

/** Runs `main` with standard output captured. */
async function captured(argv: string[]): Promise<{ code: number; stdout: string }> {
  const write = process.stdout.write.bind(process.stdout);
  let stdout = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await main(argv), stdout };
  } finally {
    process.stdout.write = write;
  }
}

/** The USAGE_INVALID error `main(argv)` rejects with (fails when it resolves or rejects otherwise). */
async function usageProblem(argv: string[]): Promise<string> {
  try {
    const { code, stdout } = await captured(argv);
    assert.fail(`${argv.join(' ')} was accepted (exit ${code}):\n${stdout}`);
  } catch (error) {
    assert.ok(isExportError(error), `${argv.join(' ')}: an ExportError, not ${String(error)}`);
    assert.equal(error.code, 'USAGE_INVALID', `${argv.join(' ')}: ${error.message}`);
    assert.doesNotMatch(error.message, /ERR_PARSE_ARGS|Unknown option|To specify a positional/, 'not Node parser text');
    assert.equal(describeFailure(error).exitCode, 2);
    return error.message;
  }
}

const FLAGS_IN_HELP: Record<string, string[]> = {
  run: [
    '--currencies',
    '--periods',
    '--attribute-set',
    '--datasets',
    '--invoices',
    '--force',
    '--json',
    '--verbose',
    '--timeout-minutes',
  ],
  start: ['--currencies', '--periods', '--datasets', '--force', '--json', '--verbose', '--timeout-minutes', '--port'],
  serve: ['--port', '--verbose'],
  runs: ['--status', '--since', '--until', '--currency', '--dataset', '--invoice', '--limit', '--json'],
  files: ['--run', '--all', '--dataset', '--download', '--json'],
  query: ['--json', '--destination'],
  doctor: ['--json'],
  emulator: ['--port', '--blob-count', '--outcome', '--quiet'],
};

/** The exit-code line of the commands whose codes differ from the general one (EXIT_CODES_TEXT). */
const OWN_EXIT_CODES: Record<string, RegExp> = {
  query:
    /^Exit codes: 0 the query ran; 1 no curated data yet, or the destination failed; 2 bad flags, settings\nor SQL/m,
  doctor: /^Exit codes: 0 every check passed; 2 a check failed/m,
  files: /^Exit codes: 0 listed or downloaded; 1 the destination failed or a file was refused; 2 bad flags/m,
  emulator: /^Exit codes: 0 stopped by Ctrl-C \(or SIGTERM\); 1 the emulator or its Azurite failed; 2 bad flags/m,
};

describe('command line: help', () => {
  for (const [command, flags] of Object.entries(FLAGS_IN_HELP)) {
    it(`${command} answers --help and -h on standard output with each of its flags and an example, exit code 0`, async () => {
      for (const help of ['--help', '-h']) {
        const { code, stdout } = await captured([command, help]);
        assert.equal(code, 0, `${command} ${help}`);
        for (const flag of [...flags, '--help']) assert.ok(stdout.includes(flag), `${command} ${help} shows ${flag}`);
        assert.match(stdout, /Examples:\n {2}(npm|csp-unbilled-export)/, `${command} ${help} has an example`);
        {
          assert.ok(stdout.startsWith(`Usage: csp-unbilled-export ${command} `), `${command} ${help}: the usage line`);
          for (const flag of [...flags, '--help']) {
            assert.match(
              stdout,
              new RegExp(`^ {2}(-\\w, | {4})${flag}\\b.* \\S`, 'm'),
              `${command}: ${flag} described`,
            );
          }
          const own = OWN_EXIT_CODES[command];
          if (own === undefined) {
            assert.ok(stdout.trimEnd().endsWith(EXIT_CODES_TEXT), `${command} ${help} ends with the exit codes`);
          } else {
            assert.ok(!stdout.includes(EXIT_CODES_TEXT), `${command} ${help}: not the general exit codes`);
            const last = stdout.trimEnd().split('\n\n').at(-1) ?? '';
            assert.match(last, own, `${command} ${help} ends with its own exit codes`);
          }
        }
      }
    });
  }

  it('help lists every command; "help run" is "run --help"', async () => {
    const general = await captured(['help']);
    assert.equal(general.code, 0);
    for (const command of Object.keys(FLAGS_IN_HELP)) assert.match(general.stdout, new RegExp(`^ {2}${command} `, 'm'));
    assert.match(general.stdout, /Exit codes: 0 done; 1 a run .* 2 bad usage or configuration/s);
    assert.equal((await captured(['help', 'run'])).stdout, (await captured(['run', '--help'])).stdout);
    const files = (await captured(['help', 'files'])).stdout;
    assert.equal(files, (await captured(['files', '--help'])).stdout);
    assert.ok(files.startsWith('Usage: csp-unbilled-export files [--run ID | --all]'), files);
    assert.match(files, /^Flags:\n {6}--run ID +one run's folder/m);
  });
});

describe('command line: the emulator command', () => {
  it("describes exactly the flags the emulator's own parser reads, values and switches alike", () => {
    const described = EMULATOR_COMMAND.flags.map(
      (flag) => `${flag.name}:${flag.value === undefined ? 'boolean' : 'string'}`,
    );
    const parsed = Object.entries(EMULATOR_FLAGS)
      .filter(([name]) => name !== 'help')
      .map(([name, option]) => `${name}:${option.type}`);
    assert.deepEqual(described.sort(), parsed.sort());
  });
});

describe('command line: usage errors name what was wrong and what is accepted (exit code 2)', () => {
  it('an unknown flag lists the flags the command accepts', async () => {
    assert.match(
      await usageProblem(['run', '--bogus']),
      /^run: unknown flag --bogus\. Accepted: --currencies LIST, .*--verbose, --timeout-minutes N, --help\. See "run --help"\.$/,
    );
    assert.match(await usageProblem(['start', '--nope']), /Accepted: .*--timeout-minutes N, --port N, --help/);
    assert.match(
      await usageProblem(['serve', '-x']),
      /^serve: unknown flag -x\. Accepted: --port N, --verbose, --help/,
    );
    assert.match(
      await usageProblem(['runs', '--state', 'failed']),
      /^runs: unknown flag --state\. Accepted: --status S/,
    );
    assert.match(
      await usageProblem(['files', '--bogus']),
      /^files: unknown flag --bogus\. Accepted: --run ID, --all, --dataset D, --download DIR, --json, --help\. See "files --help"\.$/,
    );
    assert.match(
      await usageProblem(['emulator', '--bogus']),
      /^emulator: unknown flag --bogus\. Accepted: --port N, --blob-count N, --rows-per-blob N, .*--quiet, --help\. See "emulator --help"\.$/,
    );
    assert.match(
      await usageProblem(['query', 'SELECT 1', '--limit', '3']),
      /^query: unknown flag --limit\. Accepted: --json, --destination DIR\|URL, --help\. See "query --help"\.$/,
    );
    assert.match(
      await usageProblem(['doctor', '--verbose']),
      /^doctor: unknown flag --verbose\. Accepted: --json, --help\. See "doctor --help"\.$/,
    );
    assert.match(await usageProblem(['run', '--port', '7072']), /^run: unknown flag --port\./);
  });

  it('a flag without its value, or a switch given one, is refused by name', async () => {
    assert.match(
      await usageProblem(['run', '--currencies']),
      /^run: --currencies needs a value\. Accepted: --currencies LIST/,
    );
    assert.match(await usageProblem(['runs', '--limit', '--json']), /^runs: --limit needs a value/);
    assert.match(await usageProblem(['run', '--force=yes']), /^run: --force takes no value\. Accepted: --force\./);
  });

  it('an unknown command lists the commands', async () => {
    const message = await usageProblem(['foo']);
    assert.equal(
      message,
      'unknown command "foo". Accepted: run, start, serve, runs, files, query, doctor, emulator, help. See "csp-unbilled-export --help".',
    );
  });

  it('values are checked before anything starts: ports, minutes, currencies, run filters, run ids, arguments', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['serve', '--port', 'abc'], /^serve: --port: "abc" is not a port\. Accepted: an integer from 1 to 65535, or 0/],
      [['start', '--port', '70000'], /^start: --port: "70000" is not a port/],
      [['run', '--timeout-minutes', '0'], /--timeout-minutes: "0" is not accepted; a positive number of minutes/],
      [['run', '--currencies', 'USD,xyz'], /--currencies: "XYZ" is not an ISO 4217 currency code/],
      [['run', '--periods', 'yesterday'], /--periods: "yesterday" is not a billing period/],
      [['runs', '--status', 'nope'], /^runs: --status: "nope" is not a run status; accepted: starting, /],
      [['runs', '--limit', '0', '--invoice', 'G/1'], /--invoice: "G\/1" is not an invoice id.*--limit: "0"/],
      [['runs', 'yesterday'], /^runs: "yesterday" is not a run id\. Accepted: a run id as "runs" prints it/],
      [['runs', '20261207T060000123Z-9f3a1c2b', 'more'], /^runs: unexpected argument "more"/],
      [['run', 'now'], /^run: unexpected argument "now"\. Accepted: flags only: --currencies LIST/],
      [
        ['emulator', '--outcome', 'maybe'],
        /^emulator: --outcome: 'maybe' is not accepted \(succeeded or noData or failed\)/,
      ],
    ];
    for (const [argv, pattern] of cases) assert.match(await usageProblem(argv), pattern, argv.join(' '));
  });
});

describe('command line: a port asked for that is taken', () => {
  it('is PORT_IN_USE (exit code 2) for serve, start and emulator, before anything starts', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      for (const command of ['serve', 'start', 'emulator']) {
        await assert.rejects(
          main([command, '--port', String(port)]),
          (error: unknown) =>
            isExportError(error) &&
            error.code === 'PORT_IN_USE' &&
            error.message.startsWith(`port ${port} on localhost is in use`) &&
            describeFailure(error).exitCode === 2,
          command,
        );
      }
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('command line: settings before anything starts', () => {
  it('--currencies stands in for an absent EXPORT_CURRENCIES (no "EXPORT_CURRENCIES: missing" with real Graph)', () => {
    const values: Record<string, string | undefined> = { GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0' };
    checkRunSettings(values, ['USD']);
    assert.equal(values['EXPORT_CURRENCIES'], 'USD');
    assert.throws(
      () => checkRunSettings({ GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0' }, undefined),
      (error: unknown) =>
        isExportError(error) && error.code === 'CONFIG_INVALID' && /EXPORT_CURRENCIES: missing/.test(error.message),
    );
    const configured: Record<string, string | undefined> = { EXPORT_CURRENCIES: 'EUR' };
    checkRunSettings(configured, ['USD']);
    assert.equal(configured['EXPORT_CURRENCIES'], 'EUR', 'a setting that is given stays (the flag narrows the runs)');
  });

  it('a bad setting is CONFIG_INVALID naming it, also the ones only the local host and the emulator read', () => {
    for (const [values, pattern] of [
      [{ EXPORT_CURRENCIES: 'USD,XYZ' }, /EXPORT_CURRENCIES: "XYZ" is not an ISO 4217 currency code/],
      [{ LOCAL_QUEUE_BATCH_SIZE: '99' }, /LOCAL_QUEUE_BATCH_SIZE: '99' is not accepted/],
      [{ LOCAL_EMULATOR_BLOB_COUNT: 'many' }, /LOCAL_EMULATOR_BLOB_COUNT: 'many' is not accepted/],
      [{ GRAPH_BASE_URL: 'http://graph.example.com' }, /GRAPH_BASE_URL: .*must use https/],
    ] as const) {
      assert.throws(
        () => checkRunSettings({ ...values }, undefined),
        (error: unknown) =>
          isExportError(error) &&
          error.code === 'CONFIG_INVALID' &&
          describeFailure(error).exitCode === 2 &&
          pattern.test(error.message),
        JSON.stringify(values),
      );
    }
  });
});

describe('command line: one error line and the exit codes of SPEC section 9', () => {
  it('prints "error CODE: message" (redacted) with exit code 2 for usage and settings, 3 for a busy folder, else 1', () => {
    const owner = { pid: 1, command: 'start', startedAt: '' };
    const cases: Array<[unknown, string, number]> = [
      [
        new ExportError('CONFIG_INVALID', 'Configuration is invalid'),
        'error CONFIG_INVALID: Configuration is invalid',
        2,
      ],
      [new ExportError('USAGE_INVALID', 'run: unknown flag --x.'), 'error USAGE_INVALID: run: unknown flag --x.', 2],
      [new ExportError('PORT_IN_USE', 'port 7072 is in use'), 'error PORT_IN_USE: port 7072 is in use', 2],
      [new ExportError('HOST_STORAGE_UNAVAILABLE', 'unreachable'), 'error HOST_STORAGE_UNAVAILABLE: unreachable', 2],
      [new FolderBusyError('Another command owns it', owner), 'error FOLDER_BUSY: Another command owns it', 3],
      [new ExportError('GRAPH_FORBIDDEN', 'Graph answered 403'), 'error GRAPH_FORBIDDEN: Graph answered 403', 1],
      [new Error('boom https://x.example/a?sig=SECRET'), 'error UNEXPECTED: boom https://x.example/a', 1],
    ];
    for (const [error, line, exitCode] of cases) {
      const described = describeFailure(error);
      assert.ok(described.line.startsWith(line), `${described.line} starts with ${line}`);
      assert.doesNotMatch(described.line, /SECRET/);
      assert.equal(described.exitCode, exitCode, line);
    }
  });
});
