import * as functions from '@azure/functions';
import type * as Composition from './composition';
import { instrumentFunctionsApp } from './telemetry/appInsightsTelemetry';

// Entry point loaded by the Functions host (package.json "main"): host-wide setup only.
// The functions register themselves in src/functions/*.ts.
functions.app.setup({ enableHttpStream: false });
// With APPLICATIONINSIGHTS_CONNECTION_STRING: OpenTelemetry hooks (cheap); the OpenTelemetry stack itself loads
// with the first invocation. Without it: nothing.
// composition.ts (and the SDKs with it) is required only when the options are asked for, not at start-up.
instrumentFunctionsApp(functions, process.env['APPLICATIONINSIGHTS_CONNECTION_STRING'], () =>
  (require('./composition') as typeof Composition).telemetryOptions(process.env),
);
