// Refused at deployment: the secret must be a Key Vault reference, never a value or another URL.
// expect: graphClientSecretUri (GRAPH_CLIENT_SECRET_URI) "https://example.com/secret" is not a Key Vault secret URI
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param graphTenantId = '33333333-3333-3333-3333-333333333333'
param graphClientId = '44444444-4444-4444-4444-444444444444'
param graphClientSecretUri = 'https://example.com/secret'
