// ============================================================================
// Flex Consumption plan and function app (Node.js 22, Linux).
// The runtime lives in functionAppConfig.runtime: Flex refuses FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_TIME_ZONE and the other
// settings it deprecates. The deployment package is read from a blob container of the host
// storage with the user-assigned identity.
// ============================================================================

@description('Required. Function app name (globally unique). Keep it distinct within its first 32 characters: the host id derives from them.')
param name string

@description('Required. Flex Consumption plan name.')
param planName string

@description('Required. Azure region (one that offers Flex Consumption).')
param location string

@description('Optional. Tags of the plan and the app (the app also gets azd-service-name).')
param tags object = {}

@description('Required. Resource id of the user-assigned identity of the app.')
param identityId string

@description('Required. Blob endpoint of the host storage, with its trailing slash.')
param deploymentStorageBlobEndpoint string

@description('Required. Container of the host storage that holds the deployment package.')
param deploymentContainerName string

@description('Required. App settings of the function app (assembled in main.bicep).')
param appSettings object

@description('Optional. Upper bound of instances per function group (Flex Consumption: 1 to 1000).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Optional. Memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// ----------------------------------------------------------------------------
// Plan
// ----------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

// ----------------------------------------------------------------------------
// Function app
// ----------------------------------------------------------------------------

resource site 'Microsoft.Web/sites@2025-03-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references in app settings (the app-registration alternative) resolve with this identity.
    keyVaultReferenceIdentity: identityId
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // No FTP or FTPS endpoint: azd deploys through the Flex Consumption deployment API.
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${deploymentStorageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: appSettings
  }

  // Basic (user name and password) publishing credentials off for FTP and for the SCM site:
  // deployments authenticate with Microsoft Entra ID (azd, the portal, the Azure CLI).
  resource ftpPublishingCredentials 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: {
      allow: false
    }
  }

  resource scmPublishingCredentials 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: {
      allow: false
    }
  }
}

// ----------------------------------------------------------------------------
// Outputs
// ----------------------------------------------------------------------------

@description('Name of the function app.')
output name string = site.name

@description('Resource id of the function app.')
output id string = site.id

@description('Default host name of the function app (the base of /api/exports and /admin/functions).')
output defaultHostName string = site.properties.defaultHostName
