// ============================================================================
// Host storage (AzureWebJobsStorage): the Functions host, the export queues, the run ledger
// tables and the Flex Consumption deployment package. Reached with the managed identity only:
// shared key access is disabled.
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

@description('Required. Principal (object) id of the app identity that gets the data roles below.')
param principalId string

// ----------------------------------------------------------------------------
// Roles the host and the code need on this account
// ----------------------------------------------------------------------------

var hostStorageRoleIds = [
  // Storage Blob Data Owner: host coordination blobs, timer schedule monitor and locks, deployment package
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Storage Queue Data Contributor: queue triggers, poison queues, the app's delayed status-check messages
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // Storage Table Data Contributor: the run ledger (runs, per-blob progress, start locks)
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
]

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
// Role assignments
// ----------------------------------------------------------------------------

resource roleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in hostStorageRoleIds: {
    name: guid(account.id, principalId, roleId)
    scope: account
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
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
