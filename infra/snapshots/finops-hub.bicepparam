// Snapshot case: a new destination account, and a FinOps hub's storage account in another
// subscription, with a scope folder of its own and the billed usage beside the
// unbilled usage in the hub. `npm run test:infra` validates
// finops-hub.snapshot.json against it.
using '../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param finOpsHubStorageAccountId = '/subscriptions/55555555-5555-5555-5555-555555555555/resourceGroups/rg-finops-hub/providers/Microsoft.Storage/storageAccounts/stfinopshubx7'
param finOpsHubScope = 'partners/contoso/{partnerTenantId}'
param finOpsHubDatasets = 'unbilledUsage,billedUsage'
// The default, utcNow(), would leave the no-success query an expression: a fixed deployment time.
param deploymentTime = '2026-12-01T06:00:00Z'
