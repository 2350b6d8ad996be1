// ============================================================================
// New destination account: where the exported usage files land (SPEC section 4 layout).
// Shared key disabled, TLS 1.2, no public blob access. The app identity gets Storage Blob
// Data Contributor on the destination container only. A lifecycle rule deletes blobs under
// the folders of the daily (unbilled) datasets once they are older than the retention; the
// billed datasets' folders (one export per invoice, final) are kept (docs/deploy.md, "Retention").
// ============================================================================

@description('Required. Storage account name: 3-24 lowercase letters and digits, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Required. Azure region of the account.')
param location string

@description('Optional. Tags of the account.')
param tags object = {}

@description('Optional. Replication of the account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_LRS'

@description('Required. Destination container (DESTINATION_CONTAINER).')
param containerName string

@description('Required. Folders inside the container whose blobs the retention deletes (DESTINATION_PREFIX and DESTINATION_PREFIX_UNBILLED_RECONCILIATION), without leading or trailing slash.')
@minLength(1)
@maxLength(10)
param retentionPrefixes array

@description('Optional. Create the lifecycle rule that deletes blobs under the retention folders older than retentionDays.')
param enableRetention bool = true

@description('Optional. Age in days (since last modification) after which a blob under a retention folder is deleted.')
@minValue(2)
@maxValue(3650)
param retentionDays int = 90

// ----------------------------------------------------------------------------
// Account and container
// ----------------------------------------------------------------------------

resource account 'Microsoft.Storage/storageAccounts@2026-09-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
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
    // allowedCopyScope is deliberately left unset: the export sources live in Microsoft's storage
    // (another tenant), so 'AAD' or 'PrivateLink' would refuse the server-side copies.
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

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2026-09-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}

// ----------------------------------------------------------------------------
// Retention: lifecycle management deletes blob by blob, by age (evaluated about once a day).
// latest.json is rewritten by every complete run, so it stays younger than the run folders it
// points at; see docs/deploy.md for why retentionDays must stay well above one day.
// ----------------------------------------------------------------------------

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2026-09-01' = if (enableRetention) {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          enabled: true
          name: 'delete-old-export-runs'
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: map(retentionPrefixes, folder => '${containerName}/${folder}/')
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: retentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

// ----------------------------------------------------------------------------
// Outputs
// ----------------------------------------------------------------------------


// Endpoints as the account reports them (with a trailing slash); the service URIs drop it.
var blobEndpoint = account.properties.primaryEndpoints.blob

@description('Name of the account.')
output name string = account.name

@description('Resource id of the account.')
output id string = account.id

@description('Value of DESTINATION_STORAGE__blobServiceUri.')
output blobServiceUri string = endsWith(blobEndpoint, '/') ? take(blobEndpoint, length(blobEndpoint) - 1) : blobEndpoint
