import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

/**
 * Runs `script` in a fresh `node -e` process, which reports with one `REPORT {json}` line on stdout. Asserts that it
 * exits 0 (its output in the message otherwise) and returns the parsed report (undefined when it printed none) and
 * its stderr.
 */
export async function runNodeScript(
  script: string,
  options: { cwd?: string; env: NodeJS.ProcessEnv },
): Promise<{ report: unknown; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['-e', script], {
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const status = await new Promise<number | null>((resolve) => child.on('close', (exitCode) => resolve(exitCode)));
  assert.equal(status, 0, `child failed (${status}):\n${stdout}\n${stderr}`);
  const line = stdout.split('\n').find((l) => l.startsWith('REPORT '));
  return { report: line === undefined ? undefined : JSON.parse(line.slice('REPORT '.length)), stdout, stderr };
}

/**
 * JavaScript for a stand-in of the Functions worker: makes `require('@azure/functions-core')` (which the worker injects
 * into the app) return an object with the properties `exportsJs` lists. Needs `Module` (node:module), `join`
 * (node:path) and `appDir` in scope.
 */
export function fakeFunctionsCoreJs(exportsJs: string): string {
  return `const fakePath = join(appDir, '__worker__', '@azure', 'functions-core.js');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return request === '@azure/functions-core' ? fakePath : resolve.call(this, request, ...rest);
};
const fake = new Module(fakePath);
fake.filename = fakePath;
fake.loaded = true;
fake.exports = {
${exportsJs}
};
require.cache[fakePath] = fake;`;
}
