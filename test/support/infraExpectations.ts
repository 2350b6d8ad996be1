/**
 * What the infrastructure must do for the code, shared by test/unit/infraConsistency.test.ts (reads the Bicep
 * source, Node only) and test/infra/*.infra.ts (reads the resolved snapshots, needs the Bicep CLI).
 *
 * Adding a setting to src/config.ts SETTINGS: either set it in infra/main.bicep (a parameter with the same default,
 * passed through orDefault() when it is a string azd may send as '', and an entry in exportAppSettings), or list it
 * in NOT_SET_IN_INFRA with the reason. Then run `node scripts/test-infra.js --update-snapshots` and commit the
 * snapshot diff.
 */
import { EVENTS } from '../../src/telemetry/events';

/** Settings of SETTINGS that infra/main.bicep does not set, and why. */
export const NOT_SET_IN_INFRA: Readonly<Record<string, string>> = {
  GRAPH_BASE_URL:
    'Its default (https://graph.microsoft.com/v1.0) is the only Graph a deployment calls; other values select the local emulator.',
  GRAPH_CA_CERT_FILE: "Emulator mode only: trusts the local partner billing emulator's self-signed certificate.",
  AzureWebJobsStorage:
    'Connection-string form; the deployment uses the identity-based AzureWebJobsStorage__* settings (shared keys are disabled).',
  DESTINATION_STORAGE:
    'Connection-string form; the deployment uses the identity-based DESTINATION_STORAGE__* settings (shared keys are disabled).',
  FINOPS_HUB_STORAGE:
    'Connection-string form; the deployment uses the identity-based FINOPS_HUB_STORAGE__* settings, set only when finOpsHubStorageAccountId names a hub.',
  EXPORT_STALL_MINUTES:
    'Its default (superviseRuns resumes a run whose expected next step is 30 minutes overdue) suits every deployment, and is well above the 15-minute longest poll interval; the fault suite shortens it locally.',
  EXPORT_MAX_RESUMES:
    'Its default (3 resumes, then RUN_STALLED) suits every deployment: a run that stalls four times needs an operator, not more resumes; the fault suite changes it locally.',
  PARTNER_CENTER_BASE_URL:
    'Its default (https://api.partnercenter.microsoft.com/v1) is the only Partner Center a deployment calls (the code sends a Partner Center token nowhere else); other values select the local emulator.',
};

/** Settings infra sets only with a FinOps hub (finOpsHubStorageAccountId): unset, the app's hub drop-in stays off. */
export const SET_ONLY_WITH_FINOPS_HUB: readonly string[] = [
  'FINOPS_HUB_STORAGE__blobServiceUri',
  'FINOPS_HUB_STORAGE__clientId',
  'FINOPS_HUB_SCOPE',
  'FINOPS_HUB_DATASETS',
];

/** App settings infra sets that SETTINGS does not list: read by the Functions host or by @azure/identity itself. */
export const SET_BEYOND_SETTINGS: Readonly<Record<string, string>> = {
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Read by the Functions host: send telemetry with Microsoft Entra ID.',
  AZURE_TENANT_ID: '@azure/identity EnvironmentCredential: the partner tenant of the app-registration alternative.',
  AZURE_CLIENT_SECRET: '@azure/identity EnvironmentCredential: the Key Vault reference of the app-registration secret.',
};

/** Identity-based host storage settings the Functions host reads (AzureWebJobsStorage__*). */
export const HOST_STORAGE_IDENTITY_SETTINGS = [
  'blobServiceUri',
  'queueServiceUri',
  'tableServiceUri',
  'credential',
  'clientId',
];

/** App settings Flex Consumption refuses or ignores (the runtime lives in functionAppConfig). */
export const FLEX_FORBIDDEN_SETTINGS = [
  'FUNCTIONS_WORKER_RUNTIME',
  'FUNCTIONS_WORKER_RUNTIME_VERSION',
  'FUNCTIONS_EXTENSION_VERSION',
  'FUNCTIONS_MAX_HTTP_CONCURRENCY',
  'FUNCTIONS_WORKER_PROCESS_COUNT',
  'WEBSITE_RUN_FROM_PACKAGE',
  'WEBSITE_TIME_ZONE',
  'TZ',
  'WEBSITE_NODE_DEFAULT_VERSION',
  'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING',
  'WEBSITE_CONTENTSHARE',
  'WEBSITE_CONTENTOVERVNET',
  'WEBSITE_SKIP_CONTENTSHARE_VALIDATION',
  'WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT',
  'SCM_DO_BUILD_DURING_DEPLOYMENT',
  'ENABLE_ORYX_BUILD',
];

/** Built-in Azure roles by definition id: a GUID in infra must be one of these, commented with this name. */
export const BUILT_IN_ROLES: Readonly<Record<string, string>> = {
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b': 'Storage Blob Data Owner',
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88': 'Storage Queue Data Contributor',
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3': 'Storage Table Data Contributor',
  'ba92f5b4-2d11-453d-a403-e96b0029c9fe': 'Storage Blob Data Contributor',
  '3913510d-42f4-4e42-8a64-420c390055eb': 'Monitoring Metrics Publisher',
};

/**
 * Where the code needs each role: the host storage account, the destination container, Application Insights, and
 * (with a FinOps hub) the hub's ingestion container.
 */
export const REQUIRED_ROLES: Readonly<
  Record<'hostStorageAccount' | 'destinationContainer' | 'appInsights' | 'finOpsHubIngestion', string[]>
> = {
  hostStorageAccount: ['Storage Blob Data Owner', 'Storage Queue Data Contributor', 'Storage Table Data Contributor'],
  destinationContainer: ['Storage Blob Data Contributor'],
  appInsights: ['Monitoring Metrics Publisher'],
  finOpsHubIngestion: ['Storage Blob Data Contributor'],
};

/**
 * The custom dimensions each custom event carries, as the alert and workbook queries may read them: the code's own
 * definition (src/telemetry/events.ts), which types what the emitters send.
 */
export const EVENT_DIMENSIONS: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  Object.entries(EVENTS).map(([event, { dimensions }]) => [event, dimensions]),
);

/** Measurements (customMeasurements) any event carries. */
export const EVENT_MEASUREMENTS: readonly string[] = [
  ...new Set(Object.values(EVENTS).flatMap(({ measurements }) => measurements)),
];

/** Datasets the app exports, and the ones that run every day (the no-success alert's series). */
export const DATASETS = [
  'unbilledUsage',
  'unbilledReconciliation',
  'billedUsage',
  'billedReconciliation',
  'billedAggregatedUsage',
];
export const DAILY_DATASETS = ['unbilledUsage', 'unbilledReconciliation'];

/** Hours a daily series may go without a success: 24 h between runs + EXPORT_MAX_WAIT_HOURS + this copy allowance. */
export const COPY_ALLOWANCE_HOURS = 2;
