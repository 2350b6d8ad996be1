// Refused at deployment: container names are lowercase.
// expect: destinationContainer (DESTINATION_CONTAINER) "Partner_Billing" is not a container name
using '../../main.bicep'

param environmentName = 'csp-export-test'
param location = 'westeurope'
param exportCurrencies = 'USD'
param destinationContainer = 'Partner_Billing'
