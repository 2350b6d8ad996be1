/**
 * host.json's log levels against what the Functions host exports in OpenTelemetry mode: its default filters
 * (AddDefaultOpenTelemetryFilters, Azure/azure-functions-host
 * src/WebJobs.Script/Diagnostics/OpenTelemetry/OpenTelemetryConfigurationExtensions.cs) drop `Azure.*`,
 * `Host.Results` and `Host.Aggregator` always, so a level for them only suggests an effect it does not have.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const hostJson = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'host.json'), 'utf8')) as {
  telemetryMode?: string;
  logging?: { logLevel?: Record<string, string> };
};

describe('host.json logging in OpenTelemetry mode', () => {
  it('sets no log level for a category the host never exports in OpenTelemetry mode', () => {
    assert.equal(hostJson.telemetryMode, 'OpenTelemetry');
    const dropped = Object.keys(hostJson.logging?.logLevel ?? {}).filter(
      (category) => category === 'Host.Results' || category === 'Host.Aggregator' || /^Azure(\.|$)/.test(category),
    );
    assert.deepEqual(dropped, []);
  });
});
