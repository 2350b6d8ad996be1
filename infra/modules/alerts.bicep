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

@description('Required. Name of Application Insights (in this resource group): the scope of the rules and the workbook. A name, not the resource id from the monitoring module\'s outputs, so that what-if can predict the rules and the workbook (their ids and the workbook\'s name derive from it).')
param appInsightsName string

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

@description('Required. When this deployment ran, ISO 8601 UTC (yyyy-MM-ddTHH:mm:ssZ; main.bicep passes utcNow()): the no-success rule counts a series that has no success in its look-back from this time, so that a new deployment, or a series added by this one, does not fire before it had its whole window.')
param deploymentTime string

@description('Optional. E-mail address notified by the alerts; empty creates no action group (the alerts still show in the portal).')
param alertEmailAddress string = ''

@description('Optional. Resource id of an existing action group to notify as well (e.g. the team\'s on-call group).')
param existingActionGroupId string = ''

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var appInsightsId = appInsights.id

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

// The deployment time as KQL reads it; dateTimeToEpoch refuses a value that is not a date and time.
var deploymentTimeUtc = dateTimeFromEpoch(dateTimeToEpoch(deploymentTime))

var runFailedQuery = loadTextContent('../queries/alert-run-failed.kql')
var noSuccessfulRunTemplate = loadTextContent('../queries/alert-no-successful-run.kql')
var noSuccessfulRunQuery = replace(
  replace(
    replace(noSuccessfulRunTemplate, 'let successWindow = 32h;', 'let successWindow = ${noSuccessWindowHours}h;'),
    'let deployedAt = datetime(2026-01-01T00:00:00Z);',
    'let deployedAt = datetime(${deploymentTimeUtc});'
  ),
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
//
// Severities: 1 (error) only when a series' data is overdue beyond what a healthy schedule allows
// (the no-success rule, counted from its last success or from this deployment); 2 (warning) for
// one failed run, curation or a run the app lost: each needs a look, none means the data is stale
// yet (a failed run is retried by the next day's timer, billed ones too); 3 (informational) for a
// poisoned message, which always comes with the failed run or curation it caused.
//
// Late events: the rules that alert on events look back eventWindow (6 h) every 15 minutes, so an
// event ingested up to 5 h 45 min after its timestamp is still seen. They are stateful and split
// by run (the queries keep one row per run): an event seen by many evaluations alerts once, and
// the alert resolves by itself once the event has left the window.
//
// skipQueryValidation: the rules are created in the same deployment as a brand-new Application
// Insights resource and workspace, whose query endpoint may not know them (or their tables) yet,
// so the service's validation at creation can fail an otherwise good deployment. The queries are
// instead checked offline by `npm run test:infra` with Microsoft's Kusto language service against
// the Application Insights schema (docs/deploy.md, "Checking the infrastructure").
// ----------------------------------------------------------------------------

var eventWindow = 'PT6H'
var eventFrequency = 'PT15M'

@description('A dimension of an alert rule that splits by every value of a column of its query.')
func splitBy(column string) object => {
  name: column
  operator: 'Include'
  values: [
    '*'
  ]
}

// (a) Any ExportRunFailed event, of any dataset: one alert per failed run (with its dataset and
// currency), once.
resource runFailedAlert 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = {
  name: 'alert-csp-export-run-failed-${nameToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'CSP unbilled export: a run failed'
    description: 'An export run ended failed (ExportRunFailed), of any dataset; one alert per run. The results name the dataset, run, currency, period, invoice, error code and message; see docs/errors.md for the code. The next daily run tries again; the no-success alert (severity 1) fires if the series stays without a success.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: eventFrequency
    windowSize: eventWindow
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: runFailedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            splitBy('dataset')
            splitBy('currency')
            splitBy('runId')
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

// (b) A configured daily series (dataset x currency x period x attribute set) whose last
// ExportRunCompleted (succeeded, unchanged or noData) is older than its window; a series without
// one in the look-back (the rule's 2-day window, the largest allowed) counts from this
// deployment's time instead, so a new deployment, or a series it adds, has its whole window before
// it can fire. One alert per series. Stateful: resolves once a run of the series succeeds.
// With no daily dataset configured the expected list is empty: the rule is kept (so that a
// provision after dropping the daily datasets updates an existing rule instead of leaving its old
// series in place) but disabled.
resource noSuccessfulRunAlert 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = {
  name: 'alert-csp-export-no-success-${nameToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'CSP unbilled export: no successful run of a series in ${noSuccessWindowHours} hours'
    description: 'No ExportRunCompleted with status succeeded, unchanged or noData for a configured daily series (dataset, currency, billing period, attribute set) in the last ${noSuccessWindowHours} hours (24 h between runs + EXPORT_MAX_WAIT_HOURS ${maxWaitHours} h + ${copyAllowanceHours} h to copy), counted from its last success, or from the deployment (${deploymentTimeUtc}) for a series without a success in the last 2 days: the daily timer may have stopped, a run may be stuck, or every run of that series failed. Daily datasets expected: ${empty(dailyDatasets) ? 'none (only billed datasets are configured; the rule is disabled)' : join(dailyDatasets, ', ')}.'
    severity: 1
    enabled: !empty(dailyDatasets)
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: noSuccessfulRunQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            splitBy('series')
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
// failed maxDequeueCount times. A poisoned late duplicate of a run that had ended otherwise does
// not alert (the query keeps endedRun "true" or a runStatus that is not final). One alert per run
// and poison queue, once; informational, as the run's own failure alerts too.
resource messagePoisonedAlert 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = {
  name: 'alert-csp-export-message-poisoned-${nameToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'CSP unbilled export: a message reached a poison queue'
    description: 'A queue message of the export (status check or blob copy) of a run that had not ended failed repeatedly and was moved to export-status-poison or export-copy-poison; its run is marked failed with the reason.'
    severity: 3
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: eventFrequency
    windowSize: eventWindow
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: messagePoisonedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            splitBy('queue')
            splitBy('runId')
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

// (d) An ExportRunMissing or ExportRunUnreadable event: a run whose ledger row was deleted while it
// was in flight, or a row the app cannot read. Nothing will end such a run by itself. One alert per
// event name and run, once (an unreadable row is reported on every sweep until it is fixed).
resource ledgerIntegrityAlert 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = {
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
    evaluationFrequency: eventFrequency
    windowSize: eventWindow
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: ledgerIntegrityQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            splitBy('name')
            splitBy('runId')
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

// (e) Any ExportCurationFailed event: a succeeded run's typed Parquet and FOCUS version was not made
// current. One alert per run (with its dataset and currency), once.
resource curationFailedAlert 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = {
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
    evaluationFrequency: eventFrequency
    windowSize: eventWindow
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: curationFailedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            splitBy('dataset')
            splitBy('currency')
            splitBy('runId')
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
