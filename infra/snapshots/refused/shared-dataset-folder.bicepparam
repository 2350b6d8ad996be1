// Refused at deployment: billed usage written into the unbilled usage folder.
// expect: two datasets share a folder (DESTINATION_PREFIX unbilled-usage, DESTINATION_PREFIX_UNBILLED_RECONCILIATION unbilled-reconciliation, DESTINATION_PREFIX_BILLED_USAGE unbilled-usage
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param destinationPrefixBilledUsage = 'unbilled-usage'
