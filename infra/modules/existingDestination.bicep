// ============================================================================
// Existing destination account (given by resource id; possibly in another resource group or
// subscription): deployed with scope: resourceGroup(<subscription>, <resource group>).
// Makes sure the destination container exists and grants the app identity Storage Blob Data
// Contributor on it. The account itself is not modified (no lifecycle rule: a management
// policy is one document per account and would replace the owner's rules).
// ============================================================================

@description('Required. Name of the existing storage account.')
param accountName string

@description('Required. Destination container (DESTINATION_CONTAINER); created when missing.')
param containerName string

@description('Required. Principal (object) id of the app identity that writes the exports.')
param principalId string

// Storage Blob Data Contributor: read, write and list blobs of the destination container
var blobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: accountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

// A PUT of an existing container keeps its blobs; it is idempotent.
resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
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

var blobEndpoint = account.properties.primaryEndpoints.blob

@description('Name of the account.')
output name string = account.name

@description('Value of DESTINATION_STORAGE__blobServiceUri.')
output blobServiceUri string = endsWith(blobEndpoint, '/') ? substring(blobEndpoint, 0, length(blobEndpoint) - 1) : blobEndpoint
