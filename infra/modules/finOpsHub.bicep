// ============================================================================
// FinOps hub drop-in (given by the resource id of the hub's storage account; possibly in another
// resource group or subscription): deployed with scope: resourceGroup(<subscription>, <resource group>).
// Grants the app identity Storage Blob Data Contributor on the hub's `ingestion` container, the
// only container the app writes to in a hub (it lists, writes and deletes the FOCUS Parquet files of
// its own folders there, and their manifest.json). Nothing of the hub is modified: the account and
// the container are declared `existing`; the hub's own deployment creates the container, so a
// deployment that names an account without it stops here instead of failing every drop later.
// ============================================================================

@description('Required. Name of the FinOps hub\'s storage account (the one with the ingestion container).')
param accountName string

@description('Required. Principal (object) id of the app identity that drops the FOCUS files.')
param principalId string

// Storage Blob Data Contributor: read, write, list and delete blobs of the hub's ingestion container
var blobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2026-09-01' existing = {
  name: accountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2026-09-01' existing = {
  parent: account
  name: 'default'
}

resource ingestion 'Microsoft.Storage/storageAccounts/blobServices/containers@2026-09-01' existing = {
  parent: blobService
  name: 'ingestion'
}

resource blobDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(ingestion.id, principalId, blobDataContributorRoleId)
  scope: ingestion
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Endpoints as the account reports them (with a trailing slash); the service URI drops it.
var blobEndpoint = account.properties.primaryEndpoints.blob

@description('Value of FINOPS_HUB_STORAGE__blobServiceUri.')
output blobServiceUri string = endsWith(blobEndpoint, '/') ? take(blobEndpoint, length(blobEndpoint) - 1) : blobEndpoint
