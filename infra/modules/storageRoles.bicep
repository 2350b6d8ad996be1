// ============================================================================
// Roles of the app identity on a storage account it owns, or on one of the account's blob containers.
// A module of its own, apart from the module that creates the account, because a role assignment's
// name is guid(scope, principalId, role): the identity's principal id is known only once the
// identity exists, and what-if cannot predict a module whose resource ids depend on such a value.
// Kept apart, only these assignments are predicted imprecisely, not the account, its queues and
// tables. The names are those the assignments have always had, so an existing deployment updates
// them in place (a new name for an existing assignment fails with RoleAssignmentExists).
// ============================================================================

@description('Required. Name of the storage account (in this resource group; it must exist: depend on the module that creates it).')
param accountName string

@description('Optional. Blob container the roles are scoped to; empty: the account itself.')
param containerName string = ''

@description('Required. Role definition ids (GUIDs) to assign.')
param roleIds array

@description('Required. Principal (object) id of the app identity.')
param principalId string

resource account 'Microsoft.Storage/storageAccounts@2026-09-01' existing = {
  name: accountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2026-09-01' existing = {
  parent: account
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2026-09-01' existing = {
  parent: blobService
  name: empty(containerName) ? 'none' : containerName
}

resource accountRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in (empty(containerName) ? roleIds : []): {
    name: guid(account.id, principalId, roleId)
    scope: account
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource containerRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in (empty(containerName) ? [] : roleIds): {
    name: guid(container.id, principalId, roleId)
    scope: container
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]
