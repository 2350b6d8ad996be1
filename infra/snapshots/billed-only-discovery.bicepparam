// Snapshot case: a new destination account exporting only the billed datasets (the aggregated one in a folder of its own), found every day
// through Partner Center with the app registration: the no-success rule expects no daily series
// and is disabled; the failed-run rule covers the billed runs.
using '../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param exportDatasets = 'billedUsage,billedReconciliation,billedAggregatedUsage'
param destinationPrefixBilledAggregatedUsage = 'billed/aggregated-usage'
param exportInvoiceDiscovery = 'partnerCenter'
param graphTenantId = '33333333-3333-3333-3333-333333333333'
param graphClientId = '44444444-4444-4444-4444-444444444444'
param graphClientSecretUri = 'https://kv-partner.vault.azure.net/secrets/graph-client-secret'
// The default, utcNow(), would leave the no-success query an expression: a fixed deployment time.
param deploymentTime = '2026-12-01T06:00:00Z'
