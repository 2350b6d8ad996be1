// Snapshot case: a new destination account, Graph called with the managed identity, defaults
// elsewhere. `npm run test:infra` validates new-destination.snapshot.json against it.
using '../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD,EUR'
param exportBillingPeriods = 'current,last'
param alertEmailAddress = 'billing-ops@contoso.example'
// The default, utcNow(), would leave the no-success query an expression: a fixed deployment time.
param deploymentTime = '2026-12-01T06:00:00Z'
