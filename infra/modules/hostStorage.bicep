// ============================================================================
// Host storage (AzureWebJobsStorage): the Functions host, the export queues, the run ledger
// tables and the Flex Consumption deployment package. Reached with the managed identity only:
// shared key access is disabled (its roles: storageRoles.bicep, from main.bicep).
// ============================================================================

@description('Required. Storage account name: 3-24 lowercase letters and digits, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Required. Azure region of the account.')
param location string

@description('Optional. Tags of the account.')
param tags object = {}

@description('Required. Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Required. Queues to create: the export queues and their -poison queues (src/names.ts QueueNames).')
param queueNames array

@description('Required. Tables of the run ledger to create (src/names.ts TableNames).')
param tableNames array

// ----------------------------------------------------------------------------
// Account
// ----------------------------------------------------------------------------

resource account 'Microsoft.Storage/storageAccounts@2026-09-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2026-09-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2026-09-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// ----------------------------------------------------------------------------
// Queues and ledger tables (created up front so that no listener starts on a missing queue)
// ----------------------------------------------------------------------------

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2026-09-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2026-09-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2026-09-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2026-09-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

// ----------------------------------------------------------------------------
// Outputs (service URIs without the trailing slash)
// ----------------------------------------------------------------------------


// Endpoints as the account reports them (with a trailing slash); the service URIs drop it.
var blobEndpoint = account.properties.primaryEndpoints.blob
var queueEndpoint = account.properties.primaryEndpoints.queue
var tableEndpoint = account.properties.primaryEndpoints.table

@description('Name of the account.')
output name string = account.name

@description('Resource id of the account.')
output id string = account.id

@description('Blob endpoint with its trailing slash (the base of the deployment container URL).')
output blobEndpoint string = blobEndpoint

@description('Value of AzureWebJobsStorage__blobServiceUri.')
output blobServiceUri string = endsWith(blobEndpoint, '/') ? take(blobEndpoint, length(blobEndpoint) - 1) : blobEndpoint

@description('Value of AzureWebJobsStorage__queueServiceUri.')
output queueServiceUri string = endsWith(queueEndpoint, '/') ? take(queueEndpoint, length(queueEndpoint) - 1) : queueEndpoint

@description('Value of AzureWebJobsStorage__tableServiceUri.')
output tableServiceUri string = endsWith(tableEndpoint, '/') ? take(tableEndpoint, length(tableEndpoint) - 1) : tableEndpoint

@description('Name of the deployment package container.')
output deploymentContainerName string = deploymentContainer.name
