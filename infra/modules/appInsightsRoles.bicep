// ============================================================================
// Roles of the app identity on Application Insights. Apart from the monitoring module for the
// reason given in storageRoles.bicep: the assignments' names need the identity's principal id,
// which keeps what-if from predicting the module that holds them.
// ============================================================================

@description('Required. Name of Application Insights (in this resource group; depend on the module that creates it).')
param appInsightsName string

@description('Required. Role definition ids (GUIDs) to assign.')
param roleIds array

@description('Required. Principal (object) id of the app identity.')
param principalId string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource roles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleIds: {
    name: guid(appInsights.id, principalId, roleId)
    scope: appInsights
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]
