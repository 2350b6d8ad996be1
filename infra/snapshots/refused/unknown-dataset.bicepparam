// Refused at deployment: a dataset the code does not know.
// expect: exportDatasets (EXPORT_DATASETS) "unbilledUsage,invoices": not a dataset: invoices; accepted: any of unbilledUsage, unbilledReconciliation, billedUsage, billedReconciliation
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param exportDatasets = 'unbilledUsage,invoices'
