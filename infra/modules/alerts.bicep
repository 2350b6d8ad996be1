// ============================================================================
// Alerts and saved views on the app's custom events (Application Insights, workspace-based;
// the queries use the Application Insights schema: customEvents, customDimensions).
//   - an action group that e-mails the operators (when an address is given);
//   - log search alert rules: a run failed; no successful run for a configured currency in
//     26 hours; a queue message reached a poison queue;
//   - a workbook with the run history and the duration and bytes by currency.
// Every query is a file in infra/queries, read with loadTextContent (docs and tests read the
// same files).
// ============================================================================

@description('Required. Azure region of the alert rules and the workbook.')
param location string

@description('Optional. Tags of the resources.')
param tags object = {}

@description('Required. Short token used in resource names (the azd environment token).')
param nameToken string

@description('Required. Resource id of Application Insights: the scope of the rules and the workbook.')
param appInsightsId string

@description('Required. The configured currencies (EXPORT_CURRENCIES, comma-separated): each one is expected to succeed every 26 hours.')
param currencies string

@description('Optional. E-mail address notified by the alerts; empty creates no action group (the alerts still show in the portal).')
param alertEmailAddress string = ''

@description('Optional. Resource id of an existing action group to notify as well (e.g. the team\'s on-call group).')
param existingActionGroupId string = ''

// ----------------------------------------------------------------------------
// Action group
// ----------------------------------------------------------------------------

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmailAddress)) {
  name: 'ag-csp-export-${nameToken}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'cspexport'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmailAddress
        useCommonAlertSchema: true
      }
    ]
  }
}

var emailActionGroupIds = empty(alertEmailAddress) ? [] : [actionGroup.id]
var existingActionGroupIds = empty(existingActionGroupId) ? [] : [existingActionGroupId]
var actionGroupIds = concat(emailActionGroupIds, existingActionGroupIds)

var alertActions = {
  actionGroups: actionGroupIds
  customProperties: {
    runbook: 'docs/deploy.md, section "Alerts": what each alert means and what to do'
  }
}

// ----------------------------------------------------------------------------
// Queries
// ----------------------------------------------------------------------------

// '"USD", "EUR"' from 'usd, EUR': the expected currencies of the 26-hour rule, as KQL string literals.
var expectedCurrencies = filter(split(toUpper(replace(currencies, ' ', '')), ','), currency => !empty(currency))
var expectedCurrencyLiterals = join(map(expectedCurrencies, currency => '"${currency}"'), ', ')

var runFailedQuery = loadTextContent('../queries/alert-run-failed.kql')
var noSuccessfulRunTemplate = loadTextContent('../queries/alert-no-successful-run.kql')
var noSuccessfulRunQuery = replace(noSuccessfulRunTemplate, '"__EXPECTED_CURRENCIES__"', expectedCurrencyLiterals)
var messagePoisonedQuery = loadTextContent('../queries/alert-message-poisoned.kql')
var runHistoryQuery = loadTextContent('../queries/run-history.kql')
var durationAndBytesQuery = loadTextContent('../queries/duration-and-bytes-by-currency.kql')

// ----------------------------------------------------------------------------
// Alert rules
// ----------------------------------------------------------------------------

// (a) Any ExportRunFailed event: one alert per currency; every failure notifies (stateless).
resource runFailedAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-csp-export-run-failed-${nameToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'CSP unbilled export: a run failed'
    description: 'An export run ended failed (ExportRunFailed). The results name the run, currency, period, error code and message; see docs/errors.md for the code.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: runFailedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'currency'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: alertActions
  }
}

// (b) A configured currency without ExportRunCompleted (succeeded, unchanged or noData) in 26 hours,
// including one that never succeeded. The query looks back 26 h itself; the window (2 days, the
// largest allowed) only has to contain it. Stateful: resolves once a run for the currency succeeds.
resource noSuccessfulRunAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-csp-export-no-success-26h-${nameToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'CSP unbilled export: no successful run for a currency in 26 hours'
    description: 'No ExportRunCompleted with status succeeded, unchanged or noData for a configured currency in the last 26 hours: the daily timer may have stopped, or every run of that currency failed.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    criteria: {
      allOf: [
        {
          query: noSuccessfulRunQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'currency'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: alertActions
  }
}

// (c) Any ExportMessagePoisoned event: a status check or a blob copy failed maxDequeueCount times.
resource messagePoisonedAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-csp-export-message-poisoned-${nameToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'CSP unbilled export: a message reached a poison queue'
    description: 'A queue message of the export (status check or blob copy) failed repeatedly and was moved to export-status-poison or export-copy-poison; its run is marked failed with the reason.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: messagePoisonedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'queue'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: alertActions
  }
}

// ----------------------------------------------------------------------------
// Workbook: run history, duration and bytes by currency, failures, poisoned messages
// ----------------------------------------------------------------------------

var lastSevenDaysMs = 604800000

var workbookContent = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'intro'
      content: {
        json: '## CSP unbilled usage export\nRuns of the daily Microsoft Graph unbilled usage export, from the app\'s custom events. Queries: infra/queries. Alerts and error codes: docs/deploy.md, docs/errors.md.'
      }
    }
    {
      type: 3
      name: 'runHistory'
      content: {
        version: 'KqlItem/1.0'
        title: 'Run history'
        query: runHistoryQuery
        size: 0
        timeContext: {
          durationMs: lastSevenDaysMs
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'durationAndBytes'
      content: {
        version: 'KqlItem/1.0'
        title: 'Duration and bytes by currency (runs that copied data)'
        query: durationAndBytesQuery
        size: 0
        timeContext: {
          durationMs: lastSevenDaysMs
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'failedRuns'
      content: {
        version: 'KqlItem/1.0'
        title: 'Failed runs'
        query: runFailedQuery
        size: 0
        timeContext: {
          durationMs: lastSevenDaysMs
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'poisonedMessages'
      content: {
        version: 'KqlItem/1.0'
        title: 'Messages that reached a poison queue'
        query: messagePoisonedQuery
        size: 0
        timeContext: {
          durationMs: lastSevenDaysMs
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
  ]
  fallbackResourceIds: [
    appInsightsId
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsId, 'csp-unbilled-export-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'CSP unbilled export'
    category: 'workbook'
    version: 'Notebook/1.0'
    sourceId: appInsightsId
    serializedData: string(workbookContent)
  }
}

// ----------------------------------------------------------------------------
// Outputs
// ----------------------------------------------------------------------------

@description('Resource ids of the action groups the alerts notify.')
output actionGroupIds array = actionGroupIds

@description('Names of the alert rules.')
output alertRuleNames array = [
  runFailedAlert.name
  noSuccessfulRunAlert.name
  messagePoisonedAlert.name
]

@description('Resource id of the workbook.')
output workbookId string = workbook.id
