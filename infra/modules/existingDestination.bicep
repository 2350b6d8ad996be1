// ============================================================================
// Existing destination account (given by resource id; possibly in another resource group or
// subscription): deployed with scope: resourceGroup(<subscription>, <resource group>).
// Grants the app identity Storage Blob Data Contributor on the destination container. Nothing of
// the account is modified: the container is declared `existing` (a PUT would reset its public
// access level, metadata and immutability-related settings to the template's), and no lifecycle
// rule is added (a management policy is one document per account and would replace the owner's
// rules). The container must therefore exist before the deployment (docs/deploy.md).
// ============================================================================

@description('Required. Name of the existing storage account.')
param accountName string

@description('Required. Destination container (DESTINATION_CONTAINER); it must already exist in the account.')
param containerName string

@description('Required. Principal (object) id of the app identity that writes the exports.')
param principalId string

// Storage Blob Data Contributor: read, write and list blobs of the destination container
var blobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2026-09-01' existing = {
  name: accountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2026-09-01' existing = {
  parent: account
  name: 'default'
}

// Declared `existing`: the deployment reads the container and never writes it.
resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2026-09-01' existing = {
  parent: blobService
  name: containerName
}

resource blobDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, principalId, blobDataContributorRoleId)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Endpoints as the account reports them (with a trailing slash); the service URIs drop it.
var blobEndpoint = account.properties.primaryEndpoints.blob

@description('Name of the account.')
output name string = account.name

@description('Value of DESTINATION_STORAGE__blobServiceUri.')
output blobServiceUri string = endsWith(blobEndpoint, '/') ? take(blobEndpoint, length(blobEndpoint) - 1) : blobEndpoint
