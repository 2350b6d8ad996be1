// Refused at deployment: a FinOps hub fed unbilled usage and unbilled reconciliation would count the same charges twice.
// expect: finOpsHubDatasets (FINOPS_HUB_DATASETS) "unbilledUsage,unbilledReconciliation": unbilledUsage and unbilledReconciliation together count the same charges twice in the hub
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param finOpsHubStorageAccountId = '/subscriptions/55555555-5555-5555-5555-555555555555/resourceGroups/rg-finops-hub/providers/Microsoft.Storage/storageAccounts/stfinopshubx7'
param finOpsHubDatasets = 'unbilledUsage,unbilledReconciliation'
