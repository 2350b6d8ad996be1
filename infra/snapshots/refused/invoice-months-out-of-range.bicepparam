// Refused at deployment: more invoice months than the code accepts (0 to 24).
// expect: exportInvoiceMonths (EXPORT_INVOICE_MONTHS) "25" is not accepted: a whole number of months from 0 to 24
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param exportInvoiceMonths = '25'
