import type { Config } from '../config';
import type { CurationDeps } from './curationPorts';
import type { PartnerInvoiceSource } from './invoiceDiscovery';
import type {
  BillingExportApi,
  BlobCopier,
  Clock,
  DestinationStore,
  ExportManifest,
  FinOpsHubDrop,
  Logger,
  MessageQueue,
  RunLedger,
  Telemetry,
} from './ports';

/** Everything the pipeline steps need: ports only, built by composition.ts (or by tests with fakes). */
export interface PipelineDeps {
  config: Config;
  graph: BillingExportApi;
  ledger: RunLedger;
  queue: MessageQueue;
  destination: DestinationStore;
  copier: BlobCopier;
  clock: Clock;
  telemetry: Telemetry;
  logger: Logger;
  /** Manifests (with their SAS) kept in memory only, per run: never written anywhere. */
  manifests: ManifestCache;
  /** Run id factory (tests make it deterministic). */
  newRunId(now: Date): string;
  /** Waits between in-process retries of a write (tests make it instant). */
  sleep(ms: number): Promise<void>;
  /** The partner's invoices (Partner Center), for invoice discovery; absent when discovery is off. */
  invoices?: PartnerInvoiceSource | undefined;
  /** The FinOps hub drop-in (FINOPS_HUB_STORAGE); absent when no hub is configured. */
  finOpsHub?: FinOpsHubDrop | undefined;
  /** The curation step's ports (SPEC section 4.1); absent when EXPORT_CURATION is off. */
  curation?: CurationDeps | undefined;
}

/** In-process cache of the newest manifest of each run, so copy workers need not ask Graph for every blob. */
export class ManifestCache {
  private readonly entries = new Map<string, { manifest: ExportManifest; at: number }>();
  private readonly maxEntries: number;

  constructor(maxEntries = 200) {
    this.maxEntries = maxEntries;
  }

  get(runId: string): ExportManifest | undefined {
    return this.entries.get(runId)?.manifest;
  }

  set(runId: string, manifest: ExportManifest): void {
    this.entries.delete(runId);
    this.entries.set(runId, { manifest, at: Date.now() });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  delete(runId: string): void {
    this.entries.delete(runId);
  }
}
