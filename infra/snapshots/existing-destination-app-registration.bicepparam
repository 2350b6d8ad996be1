// Snapshot case: an existing destination account in another resource group (and subscription),
// Graph called with an app registration of the partner tenant whose secret is in Key Vault; all
// four datasets (listed in another order and letter case, with spaces, as the code accepts them),
// invoice discovery through Partner Center over 6 months, and a folder of its own for billed usage.
using '../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param exportAttributeSet = 'basic'
param existingDestinationStorageAccountId = '/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/rg-finance-data/providers/Microsoft.Storage/storageAccounts/stfinancedata'
param destinationContainer = 'csp-billing'
param destinationPrefix = 'graph/unbilled'
param exportDatasets = 'billedUsage, UnbilledUsage,unbilledReconciliation , billedReconciliation'
param destinationPrefixBilledUsage = 'graph/billed-usage'
param exportInvoiceDiscovery = 'partnerCenter'
param exportInvoiceMonths = '6'
param graphTenantId = '33333333-3333-3333-3333-333333333333'
param graphClientId = '44444444-4444-4444-4444-444444444444'
param graphClientSecretUri = 'https://kv-partner.vault.azure.net/secrets/graph-client-secret'
param maxWaitHours = 12
// The default, utcNow(), would leave the no-success query an expression: a fixed deployment time.
param deploymentTime = '2026-12-01T06:00:00Z'
