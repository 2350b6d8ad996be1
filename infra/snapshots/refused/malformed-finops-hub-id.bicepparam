// Refused at deployment: a FinOps hub given by its hub name instead of its storage account's resource id.
// expect: finOpsHubStorageAccountId (FINOPS_HUB_STORAGE_ACCOUNT_ID) "finops-hub-contoso" is not a storage account resource id
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param finOpsHubStorageAccountId = 'finops-hub-contoso'
