// Snapshot case: an existing destination account in another resource group of the same
// subscription, Graph called with the managed identity.
using '../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'EUR'
param existingDestinationStorageAccountId = '/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-shared-storage/providers/Microsoft.Storage/storageAccounts/stshareddata'
// The default, utcNow(), would leave the no-success query an expression: a fixed deployment time.
param deploymentTime = '2026-12-01T06:00:00Z'
