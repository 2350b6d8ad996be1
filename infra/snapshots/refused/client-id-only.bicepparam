// Refused at deployment: an app registration client id without its tenant and secret would deploy
// and then fail every Graph call.
// expect: Half-configured app registration for Microsoft Graph: missing graphTenantId (GRAPH_TENANT_ID), graphClientSecretUri (GRAPH_CLIENT_SECRET_URI)
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param graphClientId = '44444444-4444-4444-4444-444444444444'
