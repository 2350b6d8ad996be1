// ============================================================================
// Alerts and saved views on the app's custom events (Application Insights, workspace-based;
// the queries use the Application Insights schema: customEvents, customDimensions).
//   - an action group that e-mails the operators (when an address is given);
//   - log search alert rules: a run failed (any dataset); no successful run of a configured
//     daily series within its window (24 h + EXPORT_MAX_WAIT_HOURS + copy allowance); a queue
//     message of a run that had not ended reached a poison queue; a run the app can no longer follow
//     (its ledger row deleted or unreadable);
//   - a workbook operators open first: runs per day by status, the last success per series,
//     failures by error code, duration and bytes, the run history.
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

@description('Required. The configured currencies (EXPORT_CURRENCIES, comma-separated): each one is a series of the no-success rule.')
param currencies string

@description('Required. The configured billing periods (EXPORT_BILLING_PERIODS: current, last or current,last).')
param billingPeriods string

@description('Required. The configured attribute set (EXPORT_ATTRIBUTE_SET: full or basic).')
param attributeSet string

@description('Required. The configured daily datasets (EXPORT_DATASETS filtered to unbilledUsage and unbilledReconciliation): each one is a series of the no-success rule per currency and period. Billed datasets run per invoice and have no daily series; empty (only billed datasets configured): the rule expects no series and is disabled.')
param dailyDatasets array

@description('Required. EXPORT_MAX_WAIT_HOURS: the longest a run may wait for Graph; widens the no-success window.')
@minValue(1)
@maxValue(22)
param maxWaitHours int

@description('Optional. Hours between two scheduled runs of a series (the timer runs once a day).')
@minValue(1)
@maxValue(24)
param schedulePeriodHours int = 24

@description('Optional. Hours a successful run may take to copy its blobs after Graph finished.')
@minValue(1)
@maxValue(6)
param copyAllowanceHours int = 2

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

// The series of the no-success rule: dataset x currency x billing period x attribute set, as
// KQL datatable rows ('"unbilledUsage", "USD", "current", "full"'). Currencies as the code reads
// them: trimmed, upper case, empty items ignored.
var expectedCurrencies = filter(split(toUpper(replace(currencies, ' ', '')), ','), currency => !empty(currency))
var expectedPeriods = filter(split(replace(billingPeriods, ' ', ''), ','), period => !empty(period))
var seriesPerDataset = length(expectedCurrencies) * length(expectedPeriods)
var expectedSeriesRows = map(range(0, length(dailyDatasets) * seriesPerDataset), i => '"${dailyDatasets[i / seriesPerDataset]}", "${expectedCurrencies[(i % seriesPerDataset) / length(expectedPeriods)]}", "${expectedPeriods[i % length(expectedPeriods)]}", "${attributeSet}"')

// How long a healthy series can go without a success: the schedule period, plus the longest a
// run may wait for Graph, plus the copy. A run that starts on time and succeeds late, within
// EXPORT_MAX_WAIT_HOURS, lands inside it. At most 24 + 22 + 6 = 52 h: the query looks back this
// far itself, within the rule's 2-day window (the log alert maximum).
var noSuccessWindowHours = schedulePeriodHours + maxWaitHours + copyAllowanceHours

var runFailedQuery = loadTextContent('../queries/alert-run-failed.kql')
var noSuccessfulRunTemplate = loadTextContent('../queries/alert-no-successful-run.kql')
var noSuccessfulRunQuery = replace(
  replace(noSuccessfulRunTemplate, 'let successWindow = 32h;', 'let successWindow = ${noSuccessWindowHours}h;'),
  '    "unbilledUsage", "USD", "current", "full"\n',
  '    ${join(expectedSeriesRows, ',\n    ')}\n'
)
var messagePoisonedQuery = loadTextContent('../queries/alert-message-poisoned.kql')
var ledgerIntegrityQuery = loadTextContent('../queries/alert-ledger-integrity.kql')
var curationFailedQuery = loadTextContent('../queries/alert-curation-failed.kql')
var runHistoryQuery = loadTextContent('../queries/run-history.kql')
var durationAndBytesQuery = loadTextContent('../queries/duration-and-bytes-by-currency.kql')
var runsPerDayQuery = loadTextContent('../queries/runs-per-day-by-status.kql')
var lastSuccessQuery = loadTextContent('../queries/last-success-per-series.kql')
var failuresByCodeQuery = loadTextContent('../queries/failures-by-code.kql')

// ----------------------------------------------------------------------------
// Alert rules
// ----------------------------------------------------------------------------

// (a) Any ExportRunFailed event, of any dataset: one alert per dataset and currency; every
// failure notifies (stateless).
resource runFailedAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-csp-export-run-failed-${nameToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'CSP unbilled export: a run failed'
    description: 'An export run ended failed (ExportRunFailed), of any dataset. The results name the dataset, run, currency, period, invoice, error code and message; see docs/errors.md for the code.'
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
              name: 'dataset'
              operator: 'Include'
              values: [
                '*'
              ]
            }
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

// (b) A configured daily series (dataset x currency x period x attribute set) without
// ExportRunCompleted (succeeded, unchanged or noData) within its window, including one that never
// succeeded: one alert per series. The query looks back noSuccessWindowHours itself; the rule's
// window (2 days, the largest allowed) only has to contain it. Stateful: resolves once a run of
// the series succeeds.
// With no daily dataset configured the expected list is empty: the rule is kept (so that a
// provision after dropping the daily datasets updates an existing rule instead of leaving its old
// series in place) but disabled.
resource noSuccessfulRunAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-csp-export-no-success-${nameToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'CSP unbilled export: no successful run of a series in ${noSuccessWindowHours} hours'
    description: 'No ExportRunCompleted with status succeeded, unchanged or noData for a configured daily series (dataset, currency, billing period, attribute set) in the last ${noSuccessWindowHours} hours (24 h between runs + EXPORT_MAX_WAIT_HOURS ${maxWaitHours} h + ${copyAllowanceHours} h to copy): the daily timer may have stopped, a run may be stuck, or every run of that series failed. Daily datasets expected: ${empty(dailyDatasets) ? 'none (only billed datasets are configured; the rule is disabled)' : join(dailyDatasets, ', ')}.'
    severity: 1
    enabled: !empty(dailyDatasets)
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
              name: 'series'
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

// (c) An ExportMessagePoisoned event of a run that had not ended: a status check or a blob copy
// failed maxDequeueCount times. A poisoned late duplicate of an ended run does not alert (the
// query filters on runStatus).
resource messagePoisonedAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-csp-export-message-poisoned-${nameToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'CSP unbilled export: a message reached a poison queue'
    description: 'A queue message of the export (status check or blob copy) of a run that had not ended failed repeatedly and was moved to export-status-poison or export-copy-poison; its run is marked failed with the reason.'
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

// (d) An ExportRunMissing or ExportRunUnreadable event: a run whose ledger row was deleted while it
// was in flight, or a row the app cannot read. Nothing will end such a run by itself.
resource ledgerIntegrityAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-csp-export-ledger-integrity-${nameToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'CSP unbilled export: a run the app can no longer follow'
    description: 'A queue message names a run whose ledger row is gone (ExportRunMissing, RUN_NOT_FOUND), or the supervisor met a ledger row it cannot read (ExportRunUnreadable, RUN_UNREADABLE). Nothing will finish or fail that run; see docs/errors.md.'
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
          query: ledgerIntegrityQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'name'
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
// Workbook: the page operators open first
// ----------------------------------------------------------------------------

var lastFourteenDaysMs = 1209600000
var lastThirtyDaysMs = 2592000000

@description('A workbook query item over Application Insights.')
func queryItem(name string, title string, query string, visualization string, durationMs int) object => {
  type: 3
  name: name
  content: {
    version: 'KqlItem/1.0'
    title: title
    query: query
    size: 0
    timeContext: {
      durationMs: durationMs
    }
    queryType: 0
    resourceType: 'microsoft.insights/components'
    visualization: visualization
  }
}

var workbookContent = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'intro'
      content: {
        json: '## CSP partner billing export\nRuns of the daily Microsoft Graph export, from the app\'s custom events. A series (dataset, currency, billing period, attribute set) is overdue when its last success is older than ${noSuccessWindowHours} hours. Queries: infra/queries. Alerts: docs/deploy.md; error codes: docs/errors.md.'
      }
    }
    queryItem('runsPerDay', 'Runs per day by status', runsPerDayQuery, 'barchart', lastThirtyDaysMs)
    queryItem('lastSuccess', 'Last success per series (hours since; overdue above ${noSuccessWindowHours} h)', lastSuccessQuery, 'table', lastFourteenDaysMs)
    queryItem('failuresByCode', 'Failures by error code', failuresByCodeQuery, 'table', lastFourteenDaysMs)
    queryItem('failedRuns', 'Failed runs', runFailedQuery, 'table', lastFourteenDaysMs)
    queryItem('durationAndBytes', 'Duration and bytes by day, dataset and currency (runs that copied data)', durationAndBytesQuery, 'table', lastFourteenDaysMs)
    queryItem('runHistory', 'Run history', runHistoryQuery, 'table', lastFourteenDaysMs)
    queryItem('poisonedMessages', 'Poisoned messages of runs that had not ended', messagePoisonedQuery, 'table', lastFourteenDaysMs)
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

// (d) Any ExportCurationFailed event: a succeeded run's typed Parquet and FOCUS version was not made
// current. One alert per dataset and currency; every failure notifies (stateless).
resource curationFailedAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-csp-export-curation-failed-${nameToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'CSP unbilled export: a curation failed'
    description: 'The curation of a succeeded run (typed Parquet and FOCUS, EXPORT_CURATION) ended failed (ExportCurationFailed). The raw run folder is complete; the previous curated version stays current. The results name the dataset, run, currency, invoice, error code and message; see docs/errors.md for the code.'
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
          query: curationFailedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'dataset'
              operator: 'Include'
              values: [
                '*'
              ]
            }
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
  ledgerIntegrityAlert.name
  curationFailedAlert.name
]

@description('Resource id of the workbook.')
output workbookId string = workbook.id

@description('Hours the no-success rule allows a daily series between two successes.')
output noSuccessWindowHours int = noSuccessWindowHours
