// Refused at deployment: a dataset list with no dataset in it ('' would mean the default).
// expect: exportDatasets (EXPORT_DATASETS) " , ": no dataset given
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param exportDatasets = ' , '
