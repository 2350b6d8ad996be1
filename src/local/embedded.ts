import { join } from 'node:path';
import { type PartnerBillingEmulator, startPartnerBillingEmulator } from '../emulator/partnerBillingEmulator';
import {
  type AzuriteInstance,
  DEV_STORE_ACCOUNT,
  MS_BILLING_ACCOUNT,
  PARTNER_DEST_ACCOUNT,
  startAzurite,
} from './azurite';
import { hasSetting } from './settings';

/** What the command started to fill absent settings, and the settings it filled. */
export interface EmbeddedServices {
  azurite: AzuriteInstance | undefined;
  emulator: PartnerBillingEmulator | undefined;
  /** Settings filled in (only ones that were absent). */
  filled: Record<string, string>;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Keep Azurite's data in this folder (git-ignored `.azurite/`); in memory when absent. */
  azuriteLocation?: string | undefined;
  /** Don't start the emulator even if GRAPH_BASE_URL is absent (e.g. `runs` only reads the ledger). */
  withoutEmulator?: boolean;
}

/** The default folder of Azurite's data for the command line. */
export function defaultAzuriteLocation(folder: string = process.cwd()): string {
  return join(folder, '.azurite');
}

/**
 * Embedded defaults (SPEC section 9): Azurite when host or destination storage is absent, the partner billing
 * emulator when GRAPH_BASE_URL is absent. Settings that are given are used exactly as given.
 */
export async function startEmbeddedServices(
  values: Record<string, string | undefined>,
  options: EmbeddedOptions = {},
): Promise<EmbeddedServices> {
  const filled: Record<string, string> = {};
  const needStorage = !hasSetting(values, 'AzureWebJobsStorage') || !hasSetting(values, 'DESTINATION_STORAGE');
  const needEmulator = !options.withoutEmulator && !hasSetting(values, 'GRAPH_BASE_URL');
  let azurite: AzuriteInstance | undefined;
  let emulator: PartnerBillingEmulator | undefined;
  const stop = async () => {
    await emulator?.stop();
    await azurite?.stop();
  };
  try {
    if (needStorage || needEmulator) {
      azurite = await startAzurite(options.azuriteLocation === undefined ? {} : { location: options.azuriteLocation });
    }
    if (azurite !== undefined && !hasSetting(values, 'AzureWebJobsStorage')) {
      filled['AzureWebJobsStorage'] = azurite.connectionString(DEV_STORE_ACCOUNT.name);
    }
    if (azurite !== undefined && !hasSetting(values, 'DESTINATION_STORAGE')) {
      filled['DESTINATION_STORAGE'] = azurite.connectionString(PARTNER_DEST_ACCOUNT.name);
    }
    if (needEmulator && azurite !== undefined) {
      emulator = await startPartnerBillingEmulator({
        storage: {
          blobEndpoint: `${azurite.blobEndpoint}/${MS_BILLING_ACCOUNT.name}`,
          accountName: MS_BILLING_ACCOUNT.name,
          accountKey: azurite.accountKey(MS_BILLING_ACCOUNT.name),
        },
        scenario: { pollsBeforeSuccess: 2, retryAfterSeconds: 1, blobCount: 3, rowsPerBlob: 2000 },
      });
      filled['GRAPH_BASE_URL'] = emulator.baseUrl;
      filled['GRAPH_CA_CERT_FILE'] = emulator.caCertPath;
      // The emulator also serves the Partner Center invoices list (invoice discovery), by the same loopback rule.
      if (!hasSetting(values, 'PARTNER_CENTER_BASE_URL'))
        filled['PARTNER_CENTER_BASE_URL'] = emulator.partnerCenterBaseUrl;
      if (!hasSetting(values, 'EXPORT_CURRENCIES')) filled['EXPORT_CURRENCIES'] = 'USD,EUR';
      if (!hasSetting(values, 'EXPORT_POLL_INITIAL_SECONDS')) filled['EXPORT_POLL_INITIAL_SECONDS'] = '1';
      if (!hasSetting(values, 'EXPORT_POLL_MAX_SECONDS')) filled['EXPORT_POLL_MAX_SECONDS'] = '5';
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { azurite, emulator, filled, stop };
}
