// Refused at deployment: tenant and client id without the Key Vault secret reference.
// expect: Half-configured app registration for Microsoft Graph: missing graphClientSecretUri (GRAPH_CLIENT_SECRET_URI)
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param graphTenantId = '33333333-3333-3333-3333-333333333333'
param graphClientId = '44444444-4444-4444-4444-444444444444'
