// Refused at deployment: billed aggregated usage written into the billed usage folder.
// expect: DESTINATION_PREFIX_BILLED_USAGE billed-usage, DESTINATION_PREFIX_BILLED_RECONCILIATION billed-reconciliation, DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE billed-usage): give each dataset its own folder
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param destinationPrefixBilledAggregatedUsage = 'billed-usage'
