// Refused at deployment: a dataset folder with a trailing slash.
// expect: destinationPrefixBilledReconciliation (DESTINATION_PREFIX_BILLED_RECONCILIATION) "billed/reconciliation/" must not start or end with a slash
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param destinationPrefixBilledReconciliation = 'billed/reconciliation/'
