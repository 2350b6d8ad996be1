/**
 * The command line as a user runs it (`cli.js` in a temporary folder): a bad flag, command or setting, and a port
 * that is taken, end the command at once with one `error CODE: …` line and exit code 2, before Azurite, the
 * emulator or the host start (no `.azurite/` folder is created).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanUp, spawnCli, tempWorkFolder } from '../support/cliProcess';

const folders: string[] = [];
after(() => cleanUp(folders));

/** Runs the command in a fresh folder; fails when it is still running after `seconds`. */
async function refused(args: string[], env: Record<string, string> = {}, seconds = 30) {
  const folder = tempWorkFolder('usage');
  folders.push(folder);
  const cli = spawnCli(args, folder, env);
  const timer = new Promise<never>((_, reject) =>
    setTimeout(
      () => reject(new Error(`${args.join(' ')}: still running after ${seconds} s:\n${cli.output()}`)),
      seconds * 1000,
    ).unref(),
  );
  const { code } = await Promise.race([cli.exited, timer]);
  return { code, output: cli.output(), stdout: cli.stdout(), started: existsSync(join(folder, '.azurite')) };
}

describe('command line: refused before anything starts', () => {
  // More flags and commands are refused in test/unit/commandLine.test.ts, without a process each.
  it('a bad flag or setting, or nothing to start: one "error CODE:" line, exit code 2, no Azurite or emulator started', {
    timeout: 120_000,
  }, async () => {
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['serve', '--port', 'abc'], {}, /^error USAGE_INVALID: serve: --port: "abc" is not a port\. Accepted: /m],
      [['run', '--currencies', 'USD,XYZ'], {}, /^error USAGE_INVALID: run: --currencies: "XYZ" is not an ISO 4217/m],
      [
        ['run', '--datasets', 'billedUsage', '--json'],
        {},
        /^error USAGE_INVALID: run: nothing could start: billedUsage needs invoice ids/m,
      ],
      [
        ['run'],
        { EXPORT_CURRENCIES: 'USD,XYZ' },
        /^error CONFIG_INVALID: .*\n- EXPORT_CURRENCIES: "XYZ" is not an ISO/m,
      ],
    ];
    const results = await Promise.all(cases.map(([args, env]) => refused(args, env)));
    cases.forEach(([args, , pattern], index) => {
      const { code, output, started } = results[index]!;
      const name = args.join(' ');
      assert.equal(code, 2, `${name}:\n${output}`);
      assert.match(output, pattern, name);
      assert.doesNotMatch(output, /Azurite started|emulator started|ERR_PARSE_ARGS|Unknown option/, name);
      assert.equal(started, false, `${name}: nothing was started`);
    });
    // run --json still prints its summary: the skipped dataset and why, no runs.
    const summary = JSON.parse(results[2]?.stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
    assert.deepEqual(summary['runs'], []);
    assert.deepEqual(
      (summary['skipped'] as Array<Record<string, string>>).map((s) => [s['dataset'], s['kind']]),
      [['billedUsage', 'needsInvoices']],
    );
  });

  it('an explicitly requested port that is taken is PORT_IN_USE (exit code 2) before anything starts', {
    timeout: 120_000,
  }, async () => {
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    assert.ok(address !== null && typeof address === 'object');
    try {
      // start checks its port the same way (checkPortFree in cli.ts).
      for (const command of ['serve']) {
        const { code, output, started } = await refused([command, '--port', String(address.port)]);
        assert.equal(code, 2, `${command}:\n${output}`);
        assert.match(output, new RegExp(`^error PORT_IN_USE: port ${address.port} on localhost is in use`, 'm'));
        assert.doesNotMatch(output, /using a free port instead/);
        assert.equal(started, false, `${command}: nothing was started`);
      }
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
