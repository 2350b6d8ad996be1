// ============================================================================
// csp-unbilled-export: everything `azd up` deploys.
//
// A Flex Consumption function app (Node.js 22) that exports Microsoft Graph unbilled CSP usage
// per currency into the partner's storage account every day, with:
//   - a user-assigned managed identity (host storage, destination, telemetry, Graph);
//   - host storage reached with that identity only (queues, ledger tables, deployment package);
//   - Log Analytics + Application Insights (local authentication disabled);
//   - the destination: a new storage account, or an existing one given by resource id;
//   - alert rules, an action group and a workbook on the app's custom events.
//
// This file is the wiring: parameters, names, the app settings (every setting of
// src/config.ts SETTINGS that a deployment needs; test/unit/infraConsistency.test.ts keeps them
// in step) and the outputs azd stores in the environment. The resources are in ./modules.
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

@description('Required. EXPORT_CURRENCIES: comma-separated ISO 4217 codes of the partner\'s billing currencies, e.g. USD,EUR. The 26-hour alert expects a successful run for each.')
@minLength(3)
param exportCurrencies string

@description('Optional. EXPORT_BILLING_PERIODS: current, last, or current,last.')
@allowed([
  'current'
  'last'
  'current,last'
])
param exportBillingPeriods string = 'current'

@description('Optional. EXPORT_ATTRIBUTE_SET: full or basic.')
@allowed([
  'full'
  'basic'
])
param exportAttributeSet string = 'full'

@description('Optional. EXPORT_SCHEDULE: six-field NCRONTAB of the daily timer, in UTC (Flex Consumption has no time zone setting).')
param exportSchedule string = '0 0 6 * * *'

// ----------------------------------------------------------------------------
// Parameters: destination (DESTINATION_* app settings)
// ----------------------------------------------------------------------------

@description('Optional. Resource id of an existing storage account to export into (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>); it may live in another resource group or subscription of the same tenant. Empty (default): a new account is created.')
param existingDestinationStorageAccountId string = ''

@description('Optional. DESTINATION_CONTAINER: container of the exports (created by the deployment).')
@minLength(3)
@maxLength(63)
param destinationContainer string = 'partner-billing'

@description('Optional. DESTINATION_PREFIX: folder inside the container, without leading or trailing slash.')
@minLength(1)
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

@description('Optional. New destination account only: days since last modification after which a blob under the prefix is deleted. Keep it well above the life of a billing month\'s data (about 62 days); see docs/deploy.md.')
@minValue(2)
@maxValue(3650)
param retentionDays int = 90

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

@description('Optional. EXPORT_MAX_WAIT_HOURS: a run whose Graph operation has not finished after this many hours fails.')
@minValue(1)
@maxValue(168)
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

@description('Optional. Partner tenant id of the app registration used for Graph (AZURE_TENANT_ID). Empty: the managed identity calls Graph.')
param graphTenantId string = ''

@description('Optional. Client id of the app registration used for Graph (becomes AZURE_CLIENT_ID). Empty: the managed identity calls Graph.')
param graphClientId string = ''

@description('Optional. Key Vault secret URI of the app registration\'s client secret (https://<vault>.vault.azure.net/secrets/<name>); set as a Key Vault reference in AZURE_CLIENT_SECRET, resolved with the managed identity (grant it Key Vault Secrets User on the vault).')
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

@description('Optional. Flex Consumption: upper bound of instances per function group.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Optional. Flex Consumption: memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// ----------------------------------------------------------------------------
// Names
// ----------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var appName = toLower(empty(functionAppName) ? 'func-${resourceToken}' : functionAppName)
var deploymentContainerName = 'app-package-${take(appName, 32)}-${take(resourceToken, 7)}'

// The queues and ledger tables the code uses (src/names.ts QueueNames and TableNames).
var hostQueueNames = [
  'export-status'
  'export-copy'
  'export-status-poison'
  'export-copy-poison'
]
var ledgerTableNames = [
  'exportRuns'
  'exportRunBlobs'
  'exportRunLocks'
]

var useExistingDestination = !empty(existingDestinationStorageAccountId)
// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>; the
// fallback keeps the (skipped) module's scope valid when no existing account is given.
var existingDestinationFallbackId = '/subscriptions/${subscription().subscriptionId}/resourceGroups/${rg.name}/providers/Microsoft.Storage/storageAccounts/none'
var existingDestinationParts = split(useExistingDestination ? existingDestinationStorageAccountId : existingDestinationFallbackId, '/')

// ----------------------------------------------------------------------------
// Resource group
// ----------------------------------------------------------------------------

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
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
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueNames: hostQueueNames
    tableNames: ledgerTableNames
    principalId: identity.outputs.principalId
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
    disableLocalAuth: appInsightsDisableLocalAuth
    principalId: identity.outputs.principalId
  }
}

// ----------------------------------------------------------------------------
// Destination: a new account, or the existing one (role assignment in its own resource group)
// ----------------------------------------------------------------------------

module newDestination 'modules/destinationStorage.bicep' = if (!useExistingDestination) {
  name: 'destinationStorage'
  scope: rg
  params: {
    name: 'stbill${resourceToken}'
    location: location
    tags: tags
    skuName: destinationStorageSku
    containerName: destinationContainer
    prefix: destinationPrefix
    enableRetention: enableRetention
    retentionDays: retentionDays
    principalId: identity.outputs.principalId
  }
}

module existingDestination 'modules/existingDestination.bicep' = if (useExistingDestination) {
  name: 'existingDestination'
  scope: resourceGroup(existingDestinationParts[2], existingDestinationParts[4])
  params: {
    accountName: last(existingDestinationParts)
    containerName: destinationContainer
    principalId: identity.outputs.principalId
  }
}

var destinationBlobServiceUri = useExistingDestination ? existingDestination.outputs.blobServiceUri : newDestination.outputs.blobServiceUri
var destinationAccountName = useExistingDestination ? existingDestination.outputs.name : newDestination.outputs.name

// ----------------------------------------------------------------------------
// App settings: every setting the code reads that a deployment needs (src/config.ts SETTINGS).
// Left out on purpose (allow-listed with reasons in test/unit/infraConsistency.test.ts):
// GRAPH_BASE_URL (the default is Microsoft Graph), GRAPH_CA_CERT_FILE (emulator only), and the
// connection-string forms of AzureWebJobsStorage and DESTINATION_STORAGE (no keys: the
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
  EXPORT_BILLING_PERIODS: exportBillingPeriods
  EXPORT_ATTRIBUTE_SET: exportAttributeSet
  EXPORT_SCHEDULE: exportSchedule
  DESTINATION_STORAGE__blobServiceUri: destinationBlobServiceUri
  DESTINATION_STORAGE__clientId: identity.outputs.clientId
  DESTINATION_CONTAINER: destinationContainer
  DESTINATION_PREFIX: destinationPrefix
  EXPORT_POLL_INITIAL_SECONDS: string(pollInitialSeconds)
  EXPORT_POLL_MAX_SECONDS: string(pollMaxSeconds)
  EXPORT_MAX_WAIT_HOURS: string(maxWaitHours)
  EXPORT_COPY_SINGLE_MAX_MIB: string(copySingleMaxMiB)
  EXPORT_COPY_BLOCK_MIB: string(copyBlockMiB)
  EXPORT_COPY_CONCURRENCY: string(copyConcurrency)
}

// The Graph credential (@azure/identity DefaultAzureCredential): the managed identity by default;
// an app registration of the partner tenant when graphClientId is given. Storage and telemetry
// keep using the managed identity through their own clientId settings.
var graphIdentityAppSettings = {
  AZURE_CLIENT_ID: identity.outputs.clientId
}
var graphAppRegistrationAppSettings = empty(graphClientId) ? {} : {
  AZURE_CLIENT_ID: graphClientId
  AZURE_TENANT_ID: graphTenantId
}
var graphClientSecretAppSettings = empty(graphClientId) || empty(graphClientSecretUri) ? {} : {
  AZURE_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${graphClientSecretUri})'
}

var appSettings = union(hostAppSettings, exportAppSettings, graphIdentityAppSettings, graphAppRegistrationAppSettings, graphClientSecretAppSettings)

// ----------------------------------------------------------------------------
// Function app
// ----------------------------------------------------------------------------

module functionApp 'modules/functionApp.bicep' = {
  name: 'functionApp'
  scope: rg
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

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    nameToken: resourceToken
    appInsightsId: monitoring.outputs.appInsightsId
    currencies: exportCurrencies
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
output DESTINATION_CONTAINER_NAME string = destinationContainer
output DESTINATION_PREFIX_PATH string = destinationPrefix
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.workspaceName
output ALERT_RULE_NAMES array = alerts.outputs.alertRuleNames
