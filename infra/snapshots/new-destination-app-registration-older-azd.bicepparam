// Snapshot case: a new destination account, Graph called with an app registration, and every
// optional string parameter passed as '' (what an older azd sends for an unset environment
// variable): the defaults must be in effect.
using '../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param exportBillingPeriods = ''
param exportAttributeSet = ''
param exportSchedule = ''
param existingDestinationStorageAccountId = ''
param destinationContainer = ''
param destinationPrefix = ''
param alertEmailAddress = ''
param resourceGroupName = ''
param functionAppName = ''
param existingActionGroupId = ''
param graphTenantId = '33333333-3333-3333-3333-333333333333'
param graphClientId = '44444444-4444-4444-4444-444444444444'
param graphClientSecretUri = 'https://kv-partner.vault.azure.net/secrets/graph-client-secret'
