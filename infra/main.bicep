// ============================================================================
// csp-unbilled-export: everything `azd up` deploys.
//
// A Flex Consumption function app (Node.js 22) that exports Microsoft Graph partner billing data
// (unbilled usage per currency every day by default; EXPORT_DATASETS adds the unbilled
// reconciliation and the billed datasets) into the partner's storage account, with:
//   - a user-assigned managed identity (host storage, destination, telemetry, Graph);
//   - host storage reached with that identity only (queues, ledger tables, deployment package);
//   - Log Analytics + Application Insights (local authentication disabled);
//   - the destination: a new storage account, or an existing one given by resource id;
//   - optionally, a FinOps hub's storage account: the role to drop FOCUS files into its ingestion container;
//   - alert rules, an action group and a workbook on the app's custom events.
//
// This file is the wiring: parameters, names, the app settings (every setting of
// src/config.ts SETTINGS that a deployment needs; test/unit/infraConsistency.test.ts and the
// snapshot tests of `npm run test:infra` keep them in step) and the outputs azd stores in the
// environment. The resources are in ./modules.
//
// Empty strings: an older azd passes '' for every ${VAR} of main.parameters.json that is not set
// in the environment. Every optional string parameter therefore treats '' as "not given" and falls
// back to its default through orDefault() below (its @allowed list includes '' for that reason).
// ============================================================================

targetScope = 'subscription'

// ----------------------------------------------------------------------------
// Parameters: environment
// ----------------------------------------------------------------------------

@description('Required. Name of the azd environment: seeds the resource names and the azd-env-name tag.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Required. Azure region of every resource; it must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@minLength(1)
param location string

@description('Optional. Resource group to create or update; default rg-<environmentName>.')
param resourceGroupName string = ''

@description('Optional. Function app name (globally unique, lowercase); default func-<token>. Keep it distinct within its first 32 characters (the host id).')
@maxLength(60)
param functionAppName string = ''

// ----------------------------------------------------------------------------
// Parameters: what to export (EXPORT_* app settings)
// ----------------------------------------------------------------------------

@description('Required. EXPORT_CURRENCIES: comma-separated ISO 4217 codes of the partner\'s billing currencies, e.g. USD,EUR. The no-success alert expects a successful run of each series (currency x period x attribute set) every 24 h + maxWaitHours + 2 h.')
@minLength(3)
param exportCurrencies string

@description('Optional. EXPORT_BILLING_PERIODS: current, last, or current,last (\'\': current).')
@allowed([
  ''
  'current'
  'last'
  'current,last'
])
param exportBillingPeriods string = 'current'

@description('Optional. EXPORT_ATTRIBUTE_SET: full or basic (\'\': full).')
@allowed([
  ''
  'full'
  'basic'
])
param exportAttributeSet string = 'full'

@description('Optional. EXPORT_SCHEDULE: six-field NCRONTAB of the daily timer, in UTC (Flex Consumption has no time zone setting). The no-success alert assumes one run a day.')
param exportSchedule string = '0 0 6 * * *'

// ----------------------------------------------------------------------------
// Parameters: datasets (EXPORT_DATASETS, DESTINATION_PREFIX_*, EXPORT_INVOICE_*; README "Datasets")
// ----------------------------------------------------------------------------

@description('Optional. EXPORT_DATASETS: comma-separated datasets the daily timer exports, any of unbilledUsage, unbilledReconciliation, billedUsage, billedReconciliation, billedAggregatedUsage (\'\': unbilledUsage). The no-success alert expects a success of each configured daily (unbilled) dataset per currency and period; the billed ones run once per invoice.')
param exportDatasets string = 'unbilledUsage'

@description('Optional. DESTINATION_PREFIX_UNBILLED_RECONCILIATION: folder of the unbilled invoice reconciliation dataset inside the container, without leading or trailing slash; every dataset needs its own folder.')
param destinationPrefixUnbilledReconciliation string = 'unbilled-reconciliation'

@description('Optional. DESTINATION_PREFIX_BILLED_USAGE: folder of the billed daily-rated usage dataset (per invoice), without leading or trailing slash.')
param destinationPrefixBilledUsage string = 'billed-usage'

@description('Optional. DESTINATION_PREFIX_BILLED_RECONCILIATION: folder of the billed invoice reconciliation dataset (per invoice), without leading or trailing slash.')
param destinationPrefixBilledReconciliation string = 'billed-reconciliation'

@description('Optional. DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE: folder of the billed aggregated usage dataset (per invoice, always attributeSet=full), without leading or trailing slash.')
param destinationPrefixBilledAggregatedUsage string = 'billed-aggregated-usage'

@description('Optional. EXPORT_CURATION: on, or off: after a run succeeds, its data is also written as typed Parquet (curated/) and FOCUS 1.2 (focus/) in the destination container (\'\': on). off lands the raw files only.')
@allowed([
  ''
  'on'
  'off'
])
param exportCuration string = 'on'

@description('Optional. EXPORT_INVOICE_DISCOVERY: off, or partnerCenter: the daily timer lists the partner\'s invoices in Partner Center and exports the configured billed datasets of new ones (\'\': off). partnerCenter needs the app registration (graphTenantId, graphClientId, graphClientSecretUri) registered in Partner Center: a managed identity cannot be.')
@allowed([
  ''
  'off'
  'partnerCenter'
])
param exportInvoiceDiscovery string = 'off'

@description('Optional. EXPORT_INVOICE_MONTHS: invoice discovery considers invoices of the current month and this many months before it, 0 to 24 (\'\': 3). A string, so that azd can pass it from the environment.')
param exportInvoiceMonths string = '3'

// ----------------------------------------------------------------------------
// Parameters: destination (DESTINATION_* app settings)
// ----------------------------------------------------------------------------

@description('Optional. Resource id of an existing storage account to export into (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>); it may live in another resource group or subscription of the same tenant. Empty (default): a new account is created.')
param existingDestinationStorageAccountId string = ''

@description('Optional. DESTINATION_CONTAINER: container of the exports: 3-63 lowercase letters, digits and hyphens. Created in a new destination account; an existing account must already have it (the deployment does not touch its settings).')
@maxLength(63)
param destinationContainer string = 'partner-billing'

@description('Optional. DESTINATION_PREFIX: folder inside the container, without leading or trailing slash.')
param destinationPrefix string = 'unbilled-usage'

@description('Optional. Replication of a new destination account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param destinationStorageSku string = 'Standard_LRS'

@description('Optional. New destination account only: create the lifecycle rule that deletes exported blobs older than retentionDays.')
param enableRetention bool = true

@description('Optional. New destination account only: days since last modification after which a blob under the daily datasets\' folders (DESTINATION_PREFIX, DESTINATION_PREFIX_UNBILLED_RECONCILIATION) is deleted; the billed datasets\' folders are kept. Keep it well above the life of a billing month\'s data (about 62 days); see docs/deploy.md.')
@minValue(2)
@maxValue(3650)
param retentionDays int = 90

// ----------------------------------------------------------------------------
// Parameters: FinOps hub drop-in (FINOPS_HUB_* app settings; docs/deploy.md "Connect a FinOps hub")
// ----------------------------------------------------------------------------

@description('Optional. Resource id of a FinOps hub\'s storage account (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>; the account with the ingestion container); it may live in another resource group or subscription of the same tenant. Set: the FOCUS files are also dropped into the hub, and the identity gets Storage Blob Data Contributor on its ingestion container. Empty (default): no hub.')
param finOpsHubStorageAccountId string = ''

@description('Optional. FINOPS_HUB_SCOPE: the scope folder(s) of this app\'s data in the hub, ingestion/Costs/{yyyy}/{mm}/{scope}/...; {partnerTenantId} is filled in from the Graph manifest (\'\': csp/{partnerTenantId}). Keep it once data is in the hub.')
param finOpsHubScope string = 'csp/{partnerTenantId}'

@description('Optional. FINOPS_HUB_DATASETS: comma-separated datasets whose FOCUS data go to the hub, any of unbilledUsage, unbilledReconciliation, billedUsage, billedReconciliation, billedAggregatedUsage (\'\': unbilledUsage). The hub sums every folder: usage with the reconciliation of the same billing state, or billedUsage with billedAggregatedUsage, count the same charges twice and are refused.')
param finOpsHubDatasets string = 'unbilledUsage'

// ----------------------------------------------------------------------------
// Parameters: tunables (EXPORT_POLL_*, EXPORT_MAX_WAIT_HOURS, EXPORT_COPY_*)
// ----------------------------------------------------------------------------

@description('Optional. EXPORT_POLL_INITIAL_SECONDS: first status-check delay when Graph sends no Retry-After (doubles each poll).')
@minValue(1)
@maxValue(3600)
param pollInitialSeconds int = 30

@description('Optional. EXPORT_POLL_MAX_SECONDS: largest delay between status checks.')
@minValue(1)
@maxValue(86400)
param pollMaxSeconds int = 900

@description('Optional. EXPORT_MAX_WAIT_HOURS: a run whose Graph operation has not finished after this many hours fails. At most 22 here: the no-success alert window (24 h between daily runs + this + a 2-hour copy allowance) must fit the 48 hours a log search alert can look back.')
@minValue(1)
@maxValue(22)
param maxWaitHours int = 6

@description('Optional. EXPORT_COPY_SINGLE_MAX_MIB: blobs up to this size use one Copy Blob From URL (Azure allows at most 256).')
@minValue(1)
@maxValue(256)
param copySingleMaxMiB int = 256

@description('Optional. EXPORT_COPY_BLOCK_MIB: block size of the parallel Put Block From URL copy of larger blobs.')
@minValue(1)
@maxValue(4000)
param copyBlockMiB int = 16

@description('Optional. EXPORT_COPY_CONCURRENCY: parallel Put Block From URL calls per blob (the streaming fallback uses at most 8 buffers).')
@minValue(1)
@maxValue(64)
param copyConcurrency int = 32

// ----------------------------------------------------------------------------
// Parameters: Graph credential when the identity's tenant is not the CSP partner tenant
// (an app registration in the partner tenant; docs/deploy.md "Partner tenant")
// ----------------------------------------------------------------------------

// All three or none: a client id without its tenant or secret would deploy and then fail every
// Graph call, so the deployment refuses it (graphAppRegistrationChecked below).

@description('Optional. Partner tenant id (GUID) of the app registration used for Graph (AZURE_TENANT_ID). Set together with graphClientId and graphClientSecretUri; all empty: the managed identity calls Graph.')
param graphTenantId string = ''

@description('Optional. Client id (GUID) of the app registration used for Graph (becomes AZURE_CLIENT_ID). Set together with graphTenantId and graphClientSecretUri; all empty: the managed identity calls Graph.')
param graphClientId string = ''

@description('Optional. Key Vault secret URI of the app registration\'s client secret (https://<vault>.vault.azure.net/secrets/<name>); set as a Key Vault reference in AZURE_CLIENT_SECRET, resolved with the managed identity (grant it Key Vault Secrets User on the vault). Set together with graphTenantId and graphClientId.')
param graphClientSecretUri string = ''

// ----------------------------------------------------------------------------
// Parameters: monitoring and scale
// ----------------------------------------------------------------------------

@description('Optional. E-mail address the alerts notify; empty creates no action group (alerts still show in the portal).')
param alertEmailAddress string = ''

@description('Optional. Resource id of an existing action group the alerts notify as well.')
param existingActionGroupId string = ''

@description('Optional. Days the Log Analytics workspace keeps telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Optional. Disable local (instrumentation key) authentication of Application Insights; telemetry is then sent with the managed identity.')
param appInsightsDisableLocalAuth bool = true

@description('Optional. Flex Consumption: upper bound of instances per function group (1 to 1000 since general availability; 100 is the platform default; Microsoft advises at least 40 for HTTP-heavy apps, which this one is not).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Optional. Flex Consumption: memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional. When this deployment runs (UTC; leave the default): the no-success alert counts a series without a recent success from this time, so that it does not fire before a new deployment had its first runs. A parameter because utcNow() is allowed only as a parameter default.')
param deploymentTime string = utcNow('yyyy-MM-ddTHH:mm:ssZ')

// ----------------------------------------------------------------------------
// Empty strings and the values in effect
// ----------------------------------------------------------------------------

@description('The value, or the fallback when the value is empty (an older azd passes \'\' for an unset environment variable).')
func orDefault(value string, fallback string) string => empty(value) ? fallback : value

@description('True when the text looks like a GUID (8-4-4-4-12 characters).')
func isGuid(text string) bool => length(text) == 36 && map(split(text, '-'), part => length(part)) == [8, 4, 4, 4, 12]

@description('Why a folder is refused (it starts or ends with a slash), or empty.')
func folderProblem(folder string, parameter string) string => startsWith(folder, '/') || endsWith(folder, '/') ? '${parameter} "${folder}" must not start or end with a slash' : ''

var billingPeriodsInEffect = orDefault(exportBillingPeriods, 'current')
var attributeSetInEffect = orDefault(exportAttributeSet, 'full')
var scheduleInEffect = orDefault(exportSchedule, '0 0 6 * * *')
var containerInEffect = orDefault(destinationContainer, 'partner-billing')
var prefixInEffect = orDefault(destinationPrefix, 'unbilled-usage')

// Checked here (parameters only), so that the deployment stops before it creates anything.
var containerChecked = length(containerInEffect) >= 3 && toLower(containerInEffect) == containerInEffect && !startsWith(containerInEffect, '-') && !endsWith(containerInEffect, '-')
  ? containerInEffect
  : fail('destinationContainer (DESTINATION_CONTAINER) "${containerInEffect}" is not a container name: use 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit')
var prefixChecked = !startsWith(prefixInEffect, '/') && !endsWith(prefixInEffect, '/')
  ? prefixInEffect
  : fail('destinationPrefix (DESTINATION_PREFIX) "${prefixInEffect}" must not start or end with a slash, e.g. unbilled-usage or exports/csp')

// The app registration for Graph: all three values, or none.
var graphAppRegistrationGiven = [
  !empty(graphTenantId)
  !empty(graphClientId)
  !empty(graphClientSecretUri)
]
var useGraphAppRegistration = !empty(graphTenantId) || !empty(graphClientId) || !empty(graphClientSecretUri)
var graphAppRegistrationMissing = join(
  filter(
    [
      empty(graphTenantId) ? 'graphTenantId (GRAPH_TENANT_ID)' : ''
      empty(graphClientId) ? 'graphClientId (GRAPH_CLIENT_ID)' : ''
      empty(graphClientSecretUri) ? 'graphClientSecretUri (GRAPH_CLIENT_SECRET_URI)' : ''
    ],
    name => !empty(name)
  ),
  ', '
)
var graphAppRegistrationChecked = !useGraphAppRegistration || !contains(graphAppRegistrationGiven, false)
  ? (!useGraphAppRegistration || (isGuid(graphTenantId) && isGuid(graphClientId))
      ? (!useGraphAppRegistration || (startsWith(graphClientSecretUri, 'https://') && contains(graphClientSecretUri, '.vault.') && contains(graphClientSecretUri, '/secrets/'))
          ? useGraphAppRegistration
          : fail('graphClientSecretUri (GRAPH_CLIENT_SECRET_URI) "${graphClientSecretUri}" is not a Key Vault secret URI: use https://<vault>.vault.<Key Vault DNS suffix of the cloud>/secrets/<name>, e.g. https://kv-partner.vault.azure.net/secrets/graph-client-secret'))
      : fail('graphTenantId (GRAPH_TENANT_ID) and graphClientId (GRAPH_CLIENT_ID) must be GUIDs: the partner tenant id and the application (client) id of the app registration'))
  : fail('Half-configured app registration for Microsoft Graph: missing ${graphAppRegistrationMissing}. Set graphTenantId, graphClientId and graphClientSecretUri together (an app registration in the partner tenant, its secret in Key Vault), or none of them to call Graph with the managed identity; see docs/deploy.md, "Partner tenant"')

// The datasets (src/datasets.ts), matched as the code matches them: trimmed, any letter case,
// duplicates ignored. The daily ones have a series per currency and period (the no-success alert);
// the billed ones run once per invoice.
var datasetIdsByLowerName = {
  unbilledusage: 'unbilledUsage'
  unbilledreconciliation: 'unbilledReconciliation'
  billedusage: 'billedUsage'
  billedreconciliation: 'billedReconciliation'
  billedaggregatedusage: 'billedAggregatedUsage'
}
var dailyDatasetIds = [
  'unbilledUsage'
  'unbilledReconciliation'
]
var datasetsInEffect = orDefault(exportDatasets, 'unbilledUsage')
var datasetNames = filter(map(split(datasetsInEffect, ','), name => trim(name)), name => !empty(name))
var unknownDatasetNames = filter(datasetNames, name => !contains(datasetIdsByLowerName, toLower(name)))
var datasetsChecked = empty(unknownDatasetNames) && !empty(datasetNames) ? datasetsInEffect : fail('exportDatasets (EXPORT_DATASETS) "${datasetsInEffect}": ${empty(datasetNames) ? 'no dataset given' : 'not a dataset: ${join(unknownDatasetNames, ', ')}'}; accepted: any of unbilledUsage, unbilledReconciliation, billedUsage, billedReconciliation, billedAggregatedUsage, comma-separated')
var configuredDatasets = union(map(filter(map(split(datasetsChecked, ','), name => trim(name)), name => !empty(name)), name => datasetIdsByLowerName[toLower(name)]), [])
var dailyDatasets = filter(configuredDatasets, id => contains(dailyDatasetIds, id))

// Every dataset's folder: no leading or trailing slash, and none shared by two datasets (the code
// refuses both at start-up; the deployment refuses them before it creates anything).
var unbilledReconciliationPrefixInEffect = orDefault(destinationPrefixUnbilledReconciliation, 'unbilled-reconciliation')
var billedUsagePrefixInEffect = orDefault(destinationPrefixBilledUsage, 'billed-usage')
var billedReconciliationPrefixInEffect = orDefault(destinationPrefixBilledReconciliation, 'billed-reconciliation')
var billedAggregatedUsagePrefixInEffect = orDefault(destinationPrefixBilledAggregatedUsage, 'billed-aggregated-usage')
var datasetFolders = [
  prefixInEffect
  unbilledReconciliationPrefixInEffect
  billedUsagePrefixInEffect
  billedReconciliationPrefixInEffect
  billedAggregatedUsagePrefixInEffect
]
var datasetFolderProblems = join(
  filter(
    [
      folderProblem(unbilledReconciliationPrefixInEffect, 'destinationPrefixUnbilledReconciliation (DESTINATION_PREFIX_UNBILLED_RECONCILIATION)')
      folderProblem(billedUsagePrefixInEffect, 'destinationPrefixBilledUsage (DESTINATION_PREFIX_BILLED_USAGE)')
      folderProblem(billedReconciliationPrefixInEffect, 'destinationPrefixBilledReconciliation (DESTINATION_PREFIX_BILLED_RECONCILIATION)')
      folderProblem(billedAggregatedUsagePrefixInEffect, 'destinationPrefixBilledAggregatedUsage (DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE)')
      length(union(datasetFolders, [])) == length(datasetFolders)
        ? ''
        : 'two datasets share a folder (DESTINATION_PREFIX ${prefixInEffect}, DESTINATION_PREFIX_UNBILLED_RECONCILIATION ${unbilledReconciliationPrefixInEffect}, DESTINATION_PREFIX_BILLED_USAGE ${billedUsagePrefixInEffect}, DESTINATION_PREFIX_BILLED_RECONCILIATION ${billedReconciliationPrefixInEffect}, DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE ${billedAggregatedUsagePrefixInEffect}): give each dataset its own folder'
    ],
    problem => !empty(problem)
  ),
  '; '
)
var unbilledReconciliationPrefixChecked = empty(datasetFolderProblems) ? unbilledReconciliationPrefixInEffect : fail('Dataset folders: ${datasetFolderProblems}')
var billedUsagePrefixChecked = empty(datasetFolderProblems) ? billedUsagePrefixInEffect : fail('Dataset folders: ${datasetFolderProblems}')
var billedReconciliationPrefixChecked = empty(datasetFolderProblems) ? billedReconciliationPrefixInEffect : fail('Dataset folders: ${datasetFolderProblems}')
var billedAggregatedUsagePrefixChecked = empty(datasetFolderProblems) ? billedAggregatedUsagePrefixInEffect : fail('Dataset folders: ${datasetFolderProblems}')

// Invoice discovery calls the Partner Center API, which accepts only tokens of an app registered in
// Partner Center: with the managed identity every discovery would fail (PARTNER_CENTER_FAILED), so
// the deployment refuses partnerCenter without the app registration.
var invoiceDiscoveryInEffect = orDefault(exportInvoiceDiscovery, 'off')
var invoiceDiscoveryChecked = invoiceDiscoveryInEffect == 'off' || graphAppRegistrationChecked
  ? invoiceDiscoveryInEffect
  : fail('exportInvoiceDiscovery (EXPORT_INVOICE_DISCOVERY) partnerCenter needs the app registration: Partner Center accepts only tokens of an app registered in Partner Center, never a managed identity. Set graphTenantId, graphClientId and graphClientSecretUri (GRAPH_TENANT_ID, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET_URI) and add that app in Partner Center, or set off; see README.md, "Invoice discovery"')
var invoiceMonthsInEffect = orDefault(exportInvoiceMonths, '3')
var invoiceMonthsChecked = contains(map(range(0, 25), months => string(months)), invoiceMonthsInEffect)
  ? invoiceMonthsInEffect
  : fail('exportInvoiceMonths (EXPORT_INVOICE_MONTHS) "${invoiceMonthsInEffect}" is not accepted: a whole number of months from 0 to 24, e.g. 3')

// ----------------------------------------------------------------------------
// Names
// ----------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var appInsightsName = 'appi-${resourceToken}'
var hostStorageAccountName = 'st${resourceToken}'
var newDestinationAccountName = 'stbill${resourceToken}'
var appName = toLower(empty(functionAppName) ? 'func-${resourceToken}' : functionAppName)
var deploymentContainerName = 'app-package-${take(appName, 32)}-${take(resourceToken, 7)}'

// The queues and ledger tables the code uses (src/names.ts QueueNames and TableNames).
var hostQueueNames = [
  'export-status'
  'export-copy'
  'export-status-poison'
  'export-copy-poison'
  'export-curate'
  'export-curate-poison'
]
var ledgerTableNames = [
  'exportRuns'
  'exportRunBlobs'
  'exportRunLocks'
  'exportCurations'
  'exportCurationFiles'
]

var useExistingDestination = !empty(existingDestinationStorageAccountId)
// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>; the
// fallback keeps the (skipped) module's scope valid when no existing account is given.
var existingDestinationFallbackId = '/subscriptions/${subscription().subscriptionId}/resourceGroups/${rg.name}/providers/Microsoft.Storage/storageAccounts/none'
var existingDestinationParts = split(useExistingDestination ? existingDestinationStorageAccountId : existingDestinationFallbackId, '/')
var existingDestinationChecked = length(existingDestinationParts) == 9 && toLower(existingDestinationParts[1]) == 'subscriptions' && toLower(existingDestinationParts[3]) == 'resourcegroups' && toLower(existingDestinationParts[6]) == 'microsoft.storage' && toLower(existingDestinationParts[7]) == 'storageaccounts'
  ? existingDestinationParts
  : fail('existingDestinationStorageAccountId (DESTINATION_STORAGE_ACCOUNT_ID) "${existingDestinationStorageAccountId}" is not a storage account resource id: use /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts/<name>, or leave it empty for a new account')

var useFinOpsHub = !empty(finOpsHubStorageAccountId)
var finOpsHubFallbackId = '/subscriptions/${subscription().subscriptionId}/resourceGroups/${rg.name}/providers/Microsoft.Storage/storageAccounts/none'
var finOpsHubParts = split(useFinOpsHub ? finOpsHubStorageAccountId : finOpsHubFallbackId, '/')
var finOpsHubChecked = length(finOpsHubParts) == 9 && toLower(finOpsHubParts[1]) == 'subscriptions' && toLower(finOpsHubParts[3]) == 'resourcegroups' && toLower(finOpsHubParts[6]) == 'microsoft.storage' && toLower(finOpsHubParts[7]) == 'storageaccounts'
  ? finOpsHubParts
  : fail('finOpsHubStorageAccountId (FINOPS_HUB_STORAGE_ACCOUNT_ID) "${finOpsHubStorageAccountId}" is not a storage account resource id: use /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts/<name> of the hub\'s storage account, or leave it empty for no hub')
var finOpsHubScopeInEffect = orDefault(finOpsHubScope, 'csp/{partnerTenantId}')
var finOpsHubScopeChecked = !startsWith(finOpsHubScopeInEffect, '/') && !endsWith(finOpsHubScopeInEffect, '/') && !contains(finOpsHubScopeInEffect, '//') && !contains(finOpsHubScopeInEffect, '__')
  ? finOpsHubScopeInEffect
  : fail('finOpsHubScope (FINOPS_HUB_SCOPE) "${finOpsHubScopeInEffect}" is not a scope folder: non-empty segments of letters, digits, ".", "-" and "_" (or {partnerTenantId}) separated by single slashes, no "__", e.g. csp/{partnerTenantId}')
// The datasets of the hub: known ids, and no pair the hub would count twice (the code refuses the same at start-up).
var finOpsHubDatasetsInEffect = orDefault(finOpsHubDatasets, 'unbilledUsage')
var finOpsHubDatasetNames = filter(map(split(finOpsHubDatasetsInEffect, ','), name => trim(name)), name => !empty(name))
var unknownFinOpsHubDatasetNames = filter(finOpsHubDatasetNames, name => !contains(datasetIdsByLowerName, toLower(name)))
var finOpsHubDatasetIds = map(filter(finOpsHubDatasetNames, name => contains(datasetIdsByLowerName, toLower(name))), name => datasetIdsByLowerName[toLower(name)])
var finOpsHubDoubleCountingPairs = [
  ['unbilledUsage', 'unbilledReconciliation']
  ['billedUsage', 'billedReconciliation']
  ['billedAggregatedUsage', 'billedReconciliation']
  ['billedUsage', 'billedAggregatedUsage']
]
var finOpsHubDoubleCounted = map(filter(finOpsHubDoubleCountingPairs, pair => contains(finOpsHubDatasetIds, pair[0]) && contains(finOpsHubDatasetIds, pair[1])), pair => '${pair[0]} and ${pair[1]}')
var finOpsHubDatasetsChecked = empty(unknownFinOpsHubDatasetNames) && !empty(finOpsHubDatasetNames) && empty(finOpsHubDoubleCounted)
  ? finOpsHubDatasetsInEffect
  : fail('finOpsHubDatasets (FINOPS_HUB_DATASETS) "${finOpsHubDatasetsInEffect}": ${empty(finOpsHubDatasetNames) ? 'no dataset given' : !empty(unknownFinOpsHubDatasetNames) ? 'not a dataset: ${join(unknownFinOpsHubDatasetNames, ', ')}' : '${join(finOpsHubDoubleCounted, '; ')} together count the same charges twice in the hub'}; accepted: any of unbilledUsage, unbilledReconciliation, billedUsage, billedReconciliation, billedAggregatedUsage, comma-separated, without a usage dataset and the reconciliation of the same billing state, nor billedUsage with billedAggregatedUsage')

// ----------------------------------------------------------------------------
// Resource group
// ----------------------------------------------------------------------------

resource rg 'Microsoft.Resources/resourceGroups@2025-04-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

// ----------------------------------------------------------------------------
// Identity, host storage, monitoring
// ----------------------------------------------------------------------------

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module hostStorage 'modules/hostStorage.bicep' = {
  name: 'hostStorage'
  scope: rg
  params: {
    name: hostStorageAccountName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueNames: hostQueueNames
    tableNames: ledgerTableNames
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-${resourceToken}'
    appInsightsName: appInsightsName
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
    disableLocalAuth: appInsightsDisableLocalAuth
  }
}

// ----------------------------------------------------------------------------
// Destination: a new account, or the existing one (role assignment in its own resource group)
// ----------------------------------------------------------------------------

module newDestination 'modules/destinationStorage.bicep' = if (!useExistingDestination) {
  name: 'destinationStorage'
  scope: rg
  params: {
    name: newDestinationAccountName
    location: location
    tags: tags
    skuName: destinationStorageSku
    containerName: containerChecked
    retentionPrefixes: [
      prefixChecked
      unbilledReconciliationPrefixChecked
    ]
    enableRetention: enableRetention
    retentionDays: retentionDays
  }
}

module existingDestination 'modules/existingDestination.bicep' = if (useExistingDestination) {
  name: 'existingDestination'
  scope: resourceGroup(existingDestinationChecked[2], existingDestinationChecked[4])
  params: {
    accountName: last(existingDestinationChecked)
    containerName: containerChecked
    // Names the module's role assignments, guid(scope, principalId, role), known only once the identity exists. Kept:
    // a new name for an existing assignment fails the next provision (RoleAssignmentExists). What-if therefore
    // predicts this module less precisely.
    #disable-next-line what-if-short-circuiting
    principalId: identity.outputs.principalId
  }
}

// The FinOps hub drop-in: the role on the hub's ingestion container, in the hub's resource group.
module finOpsHub 'modules/finOpsHub.bicep' = if (useFinOpsHub) {
  name: 'finOpsHub'
  scope: resourceGroup(finOpsHubChecked[2], finOpsHubChecked[4])
  params: {
    accountName: last(finOpsHubChecked)
    // Names the module's role assignments, guid(scope, principalId, role), known only once the identity exists. Kept:
    // a new name for an existing assignment fails the next provision (RoleAssignmentExists). What-if therefore
    // predicts this module less precisely.
    #disable-next-line what-if-short-circuiting
    principalId: identity.outputs.principalId
  }
}

// ----------------------------------------------------------------------------
// Roles of the app identity on what this deployment creates. In modules of their own, given the
// names (not the creating modules' outputs) and depending on those modules: their names need the
// identity's principal id, a runtime value, so what-if cannot predict them; kept apart, it still
// predicts the accounts, queues, tables and Application Insights. (The existing destination's and
// the FinOps hub's role stay in their modules, which hold nothing else to predict.)
// ----------------------------------------------------------------------------

var hostStorageRoleIds = [
  // Storage Blob Data Owner: host coordination blobs, timer schedule monitor and locks, deployment package
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Storage Queue Data Contributor: queue triggers, poison queues, the app's delayed status-check messages
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // Storage Table Data Contributor: the run ledger (runs, per-blob progress, start locks)
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
]
// Storage Blob Data Contributor: read, write and list blobs of the destination container
var destinationRoleIds = ['ba92f5b4-2d11-453d-a403-e96b0029c9fe']
// Monitoring Metrics Publisher: send telemetry to a component whose local authentication is disabled
var telemetryRoleIds = ['3913510d-42f4-4e42-8a64-420c390055eb']

module hostStorageRoles 'modules/storageRoles.bicep' = {
  name: 'hostStorageRoles'
  scope: rg
  dependsOn: [
    hostStorage
  ]
  params: {
    accountName: hostStorageAccountName
    roleIds: hostStorageRoleIds
    // Names the module's role assignments, guid(scope, principalId, role), known only once the identity exists. Kept:
    // a new name for an existing assignment fails the next provision (RoleAssignmentExists). What-if therefore
    // predicts this module less precisely.
    #disable-next-line what-if-short-circuiting
    principalId: identity.outputs.principalId
  }
}

module newDestinationRoles 'modules/storageRoles.bicep' = if (!useExistingDestination) {
  name: 'destinationStorageRoles'
  scope: rg
  dependsOn: [
    newDestination
  ]
  params: {
    accountName: newDestinationAccountName
    // Container scope: least privilege.
    containerName: containerChecked
    roleIds: destinationRoleIds
    // Names the module's role assignments, guid(scope, principalId, role), known only once the identity exists. Kept:
    // a new name for an existing assignment fails the next provision (RoleAssignmentExists). What-if therefore
    // predicts this module less precisely.
    #disable-next-line what-if-short-circuiting
    principalId: identity.outputs.principalId
  }
}

module telemetryRoles 'modules/appInsightsRoles.bicep' = {
  name: 'telemetryRoles'
  scope: rg
  dependsOn: [
    monitoring
  ]
  params: {
    appInsightsName: appInsightsName
    roleIds: telemetryRoleIds
    // Names the module's role assignments, guid(scope, principalId, role), known only once the identity exists. Kept:
    // a new name for an existing assignment fails the next provision (RoleAssignmentExists). What-if therefore
    // predicts this module less precisely.
    #disable-next-line what-if-short-circuiting
    principalId: identity.outputs.principalId
  }
}

// The `!`: each module is deployed exactly when its branch of the condition is taken.
var destinationBlobServiceUri = useExistingDestination ? existingDestination!.outputs.blobServiceUri : newDestination!.outputs.blobServiceUri
var destinationAccountName = useExistingDestination ? existingDestination!.outputs.name : newDestination!.outputs.name

// ----------------------------------------------------------------------------
// App settings: every setting the code reads that a deployment needs (src/config.ts SETTINGS).
// Left out on purpose (allow-listed with reasons in test/support/infraExpectations.ts
// NOT_SET_IN_INFRA): GRAPH_BASE_URL and PARTNER_CENTER_BASE_URL (the defaults are Microsoft Graph
// and Partner Center; other values select the emulator), GRAPH_CA_CERT_FILE (emulator only),
// EXPORT_STALL_MINUTES and EXPORT_MAX_RESUMES (the supervisor's defaults suit every deployment),
// and the connection-string forms of AzureWebJobsStorage and DESTINATION_STORAGE (no keys: the
// identity-based forms below are used).
// Never set on Flex Consumption: FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
// WEBSITE_RUN_FROM_PACKAGE, WEBSITE_TIME_ZONE (the runtime is in functionAppConfig).
// ----------------------------------------------------------------------------

var hostAppSettings = {
  AzureWebJobsStorage__blobServiceUri: hostStorage.outputs.blobServiceUri
  AzureWebJobsStorage__queueServiceUri: hostStorage.outputs.queueServiceUri
  AzureWebJobsStorage__tableServiceUri: hostStorage.outputs.tableServiceUri
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
}

var exportAppSettings = {
  EXPORT_CURRENCIES: exportCurrencies
  EXPORT_BILLING_PERIODS: billingPeriodsInEffect
  EXPORT_ATTRIBUTE_SET: attributeSetInEffect
  EXPORT_SCHEDULE: scheduleInEffect
  DESTINATION_STORAGE__blobServiceUri: destinationBlobServiceUri
  DESTINATION_STORAGE__clientId: identity.outputs.clientId
  DESTINATION_CONTAINER: containerChecked
  DESTINATION_PREFIX: prefixChecked
  EXPORT_DATASETS: datasetsChecked
  DESTINATION_PREFIX_UNBILLED_RECONCILIATION: unbilledReconciliationPrefixChecked
  DESTINATION_PREFIX_BILLED_USAGE: billedUsagePrefixChecked
  DESTINATION_PREFIX_BILLED_RECONCILIATION: billedReconciliationPrefixChecked
  DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE: billedAggregatedUsagePrefixChecked
  EXPORT_CURATION: orDefault(exportCuration, 'on')
  EXPORT_INVOICE_DISCOVERY: invoiceDiscoveryChecked
  EXPORT_INVOICE_MONTHS: invoiceMonthsChecked
  EXPORT_POLL_INITIAL_SECONDS: string(pollInitialSeconds)
  EXPORT_POLL_MAX_SECONDS: string(pollMaxSeconds)
  EXPORT_MAX_WAIT_HOURS: string(maxWaitHours)
  EXPORT_COPY_SINGLE_MAX_MIB: string(copySingleMaxMiB)
  EXPORT_COPY_BLOCK_MIB: string(copyBlockMiB)
  EXPORT_COPY_CONCURRENCY: string(copyConcurrency)
}

// The Graph credential (@azure/identity DefaultAzureCredential): the managed identity by default;
// an app registration of the partner tenant (tenant, client id and Key Vault secret, all three)
// otherwise. Storage and telemetry keep using the managed identity through their own clientId
// settings.
var graphIdentityAppSettings = {
  AZURE_CLIENT_ID: identity.outputs.clientId
}
var graphAppRegistrationAppSettings = graphAppRegistrationChecked ? {
  AZURE_CLIENT_ID: graphClientId
  AZURE_TENANT_ID: graphTenantId
  AZURE_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${graphClientSecretUri})'
} : {}

// The FinOps hub drop-in: only with a hub (the app reads FINOPS_HUB_STORAGE__blobServiceUri to turn it on).
var finOpsHubAppSettings = useFinOpsHub ? {
  FINOPS_HUB_STORAGE__blobServiceUri: finOpsHub!.outputs.blobServiceUri
  FINOPS_HUB_STORAGE__clientId: identity.outputs.clientId
  FINOPS_HUB_SCOPE: finOpsHubScopeChecked
  FINOPS_HUB_DATASETS: finOpsHubDatasetsChecked
} : {}

var appSettings = union(hostAppSettings, exportAppSettings, graphIdentityAppSettings, graphAppRegistrationAppSettings, finOpsHubAppSettings)

// ----------------------------------------------------------------------------
// Function app
// ----------------------------------------------------------------------------

// After the roles: the host starts with its identity's access to host storage, the destination and telemetry granted.
module functionApp 'modules/functionApp.bicep' = {
  name: 'functionApp'
  scope: rg
  dependsOn: [
    hostStorageRoles
    newDestinationRoles
    telemetryRoles
  ]
  params: {
    name: appName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    deploymentStorageBlobEndpoint: hostStorage.outputs.blobEndpoint
    deploymentContainerName: hostStorage.outputs.deploymentContainerName
    appSettings: appSettings
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
}

// ----------------------------------------------------------------------------
// Alerts and workbook
// ----------------------------------------------------------------------------

// The alerts module names Application Insights rather than taking its id from the monitoring module's outputs
// (a runtime value would keep what-if from predicting the rules); hence the explicit dependency.
module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  dependsOn: [
    monitoring
  ]
  params: {
    location: location
    tags: tags
    nameToken: resourceToken
    appInsightsName: appInsightsName
    currencies: exportCurrencies
    billingPeriods: billingPeriodsInEffect
    attributeSet: attributeSetInEffect
    dailyDatasets: dailyDatasets
    maxWaitHours: maxWaitHours
    deploymentTime: deploymentTime
    alertEmailAddress: alertEmailAddress
    existingActionGroupId: existingActionGroupId
  }
}

// ----------------------------------------------------------------------------
// Outputs (azd stores them in .azure/<environment>/.env; docs/deploy.md uses them)
// ----------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_MANAGED_IDENTITY_NAME string = identity.outputs.name
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_TENANT_ID string = identity.outputs.tenantId
output HOST_STORAGE_ACCOUNT_NAME string = hostStorage.outputs.name
output DESTINATION_STORAGE_ACCOUNT_NAME string = destinationAccountName
output DESTINATION_BLOB_SERVICE_URI string = destinationBlobServiceUri
output DESTINATION_CONTAINER_NAME string = containerChecked
output DESTINATION_PREFIX_PATH string = prefixChecked
output FINOPS_HUB_BLOB_SERVICE_URI string = useFinOpsHub ? finOpsHub!.outputs.blobServiceUri : ''
output GRAPH_CREDENTIAL string = graphAppRegistrationChecked ? 'appRegistration' : 'managedIdentity'
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.workspaceName
output ALERT_RULE_NAMES array = alerts.outputs.alertRuleNames
