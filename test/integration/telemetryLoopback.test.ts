/**
 * A started telemetry runtime opens no connection off the machine: the Azure Monitor distro and its exporter probe
 * the Azure VM instance metadata service (169.254.169.254) when they start, unless the runtime stops them. Each case
 * starts the runtime in a fresh process (it is process-wide) under test/support/loopbackOnly, which reports every
 * connection to a host other than loopback on stderr, even when the library that tried swallows the error.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const GUARD = join(__dirname, '..', 'support', 'loopbackOnly.js');
const TSC_RUNTIME = join(__dirname, '..', '..', 'src', 'telemetry', 'openTelemetryRuntime.js');
const PACKAGE_CORE = join(__dirname, '..', '..', 'package', 'core.js');
// Nothing listens there: the exporter may try it, on this machine only.
const CONNECTION_STRING =
  'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/;LiveEndpoint=http://127.0.0.1:9/';

/** Starts the runtime that `load` (an expression) returns in a guarded child, and gives its stderr and exit code. */
async function startGuarded(load: string): Promise<{ code: number | null; stderr: string }> {
  const script = `
    const { startTelemetryRuntime } = ${load};
    const runtime = startTelemetryRuntime({ connectionString: ${JSON.stringify(CONNECTION_STRING)}, roleName: 'loopback' });
    runtime.event('LoopbackCheck', { step: 'started' }, {});
    // The probes start with the runtime; the distro's own VM probe gives up after 1 s.
    setTimeout(() => process.exit(0), 1500);
  `;
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: `--require ${GUARD}` };
  // Outside Azure, as on a developer's machine or a build agent: no settings that would make a library skip a probe.
  for (const name of [
    'FUNCTIONS_WORKER_RUNTIME',
    'WEBSITE_SITE_NAME',
    'WEBSITE_HOSTNAME',
    'KUBERNETES_SERVICE_HOST',
    'AKS_ARM_NAMESPACE_ID',
    'APPLICATIONINSIGHTS_STATSBEAT_DISABLED',
    'APPLICATION_INSIGHTS_NO_STATSBEAT',
    'OTEL_NODE_RESOURCE_DETECTORS',
  ]) {
    delete env[name];
  }
  const child = spawn(process.execPath, ['-e', script], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stderr };
}

describe('a started telemetry runtime', () => {
  it('opens no connection off the machine (tsc output)', async () => {
    const { code, stderr } = await startGuarded(`require(${JSON.stringify(TSC_RUNTIME)})`);
    assert.doesNotMatch(stderr, /loopbackOnly: refused/, 'no probe of 169.254.169.254 or any other remote host');
    assert.equal(code, 0, stderr);
  });

  it('opens no connection off the machine (deployment package, outside node_modules)', async () => {
    assert.ok(
      existsSync(PACKAGE_CORE),
      `${PACKAGE_CORE} is missing: build the deployment package first (npm run build)`,
    );
    const dir = mkdtempSync(join(tmpdir(), 'loopback-'));
    try {
      cpSync(PACKAGE_CORE, join(dir, 'core.js'));
      const load = `require(${JSON.stringify(join(dir, 'core.js'))})['src/telemetry/openTelemetryRuntime.ts']`;
      const { code, stderr } = await startGuarded(load);
      assert.doesNotMatch(stderr, /loopbackOnly: refused/, 'no probe of 169.254.169.254 or any other remote host');
      assert.equal(code, 0, stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
