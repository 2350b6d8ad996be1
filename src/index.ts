import { app } from '@azure/functions';

// Entry point loaded by the Functions host (package.json "main"): host-wide setup only.
// The functions register themselves in src/functions/*.ts; telemetry is built lazily with the first invocation.
app.setup({ enableHttpStream: false });
