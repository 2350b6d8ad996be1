// ============================================================================
// User-assigned managed identity of the function app.
// One identity for everything: host storage, the destination account, Application Insights
// ingestion and (when its tenant is the CSP partner tenant) Microsoft Graph.
// ============================================================================

@description('Required. Name of the user-assigned managed identity.')
param name string

@description('Required. Azure region of the identity.')
param location string

@description('Optional. Tags of the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: name
  location: location
  tags: tags
}

@description('Resource id of the identity.')
output id string = identity.id

@description('Name of the identity.')
output name string = identity.name

@description('Object (principal) id of the identity: the id role assignments and the Graph app-role assignment use.')
output principalId string = identity.properties.principalId

@description('Client id of the identity: the value of AZURE_CLIENT_ID, AzureWebJobsStorage__clientId and DESTINATION_STORAGE__clientId.')
output clientId string = identity.properties.clientId

@description('Microsoft Entra tenant of the identity: must be the CSP partner tenant for the identity to call Graph.')
output tenantId string = identity.properties.tenantId
