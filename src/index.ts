import * as functions from '@azure/functions';
import { telemetryOptions } from './composition';
import { instrumentFunctionsApp } from './telemetry/appInsightsTelemetry';

// Entry point loaded by the Functions host (package.json "main"): host-wide setup only.
// The functions register themselves in src/functions/*.ts.
functions.app.setup({ enableHttpStream: false });
// With APPLICATIONINSIGHTS_CONNECTION_STRING: OpenTelemetry hooks (cheap); the OpenTelemetry stack itself loads
// with the first invocation. Without it: nothing.
instrumentFunctionsApp(functions, process.env['APPLICATIONINSIGHTS_CONNECTION_STRING'], () =>
  telemetryOptions(process.env),
);
