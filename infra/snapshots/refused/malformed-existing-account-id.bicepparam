// Refused at deployment: an existing destination given by name instead of resource id.
// expect: existingDestinationStorageAccountId (DESTINATION_STORAGE_ACCOUNT_ID) "stfinancedata" is not a storage account resource id
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param existingDestinationStorageAccountId = 'stfinancedata'
