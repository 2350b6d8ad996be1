// ============================================================================
// Log Analytics workspace and workspace-based Application Insights.
// Local (instrumentation key) authentication is disabled: the host and the app send telemetry
// with the managed identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING), which gets the
// Monitoring Metrics Publisher role from main.bicep (appInsightsRoles.bicep).
// ============================================================================

@description('Required. Name of the Log Analytics workspace.')
param workspaceName string

@description('Required. Name of the Application Insights component.')
param appInsightsName string

@description('Required. Azure region of both resources.')
param location string

@description('Optional. Tags of both resources.')
param tags object = {}

@description('Optional. Days the workspace keeps data (the run history queries look back this far).')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

@description('Optional. Disable local (instrumentation key) authentication of Application Insights, so that only Microsoft Entra identities can send telemetry.')
param disableLocalAuth bool = true

// ----------------------------------------------------------------------------
// Resources
// ----------------------------------------------------------------------------

resource workspace 'Microsoft.OperationalInsights/workspaces@2026-03-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    retentionInDays: retentionInDays
    sku: {
      name: 'PerGB2018'
    }
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: disableLocalAuth
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

// ----------------------------------------------------------------------------
// Outputs
// ----------------------------------------------------------------------------

@description('Resource id of the Log Analytics workspace.')
output workspaceId string = workspace.id

@description('Name of the Log Analytics workspace.')
output workspaceName string = workspace.name

@description('Resource id of Application Insights (the scope of the alert rules and the workbook).')
output appInsightsId string = appInsights.id

@description('Name of Application Insights.')
output appInsightsName string = appInsights.name

@description('Connection string of Application Insights (not a secret: with local authentication disabled it only names the endpoint and resource).')
output connectionString string = appInsights.properties.ConnectionString
