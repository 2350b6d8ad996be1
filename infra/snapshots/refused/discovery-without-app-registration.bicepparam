// Refused at deployment: invoice discovery with the managed identity (Partner Center accepts only
// an app registered in Partner Center).
// expect: exportInvoiceDiscovery (EXPORT_INVOICE_DISCOVERY) partnerCenter needs the app registration
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param exportDatasets = 'unbilledUsage,billedUsage'
param exportInvoiceDiscovery = 'partnerCenter'
