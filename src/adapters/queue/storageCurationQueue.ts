import type { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { QueueNames } from '../../names';
import type { CurateMessage, CurationQueue } from '../../pipeline/curationPorts';
import { encodeQueueMessage } from './storageMessageQueue';

/** The export-curate queue: base64 JSON messages (as the Functions host expects), never expiring. */
export class StorageCurationQueue implements CurationQueue {
  private readonly queue: QueueClient;
  private ready: Promise<void> | undefined;

  constructor(service: QueueServiceClient, queueName: string = QueueNames.curate) {
    this.queue = service.getQueueClient(queueName);
  }

  async sendCurate(messages: CurateMessage[]): Promise<void> {
    if (messages.length === 0) return;
    this.ready ??= this.queue.createIfNotExists().then(
      () => undefined,
      (error: unknown) => {
        this.ready = undefined;
        throw error;
      },
    );
    await this.ready;
    // Eight at a time: a run has a handful of files per currency, a large one a few hundred.
    for (let i = 0; i < messages.length; i += 8) {
      await Promise.all(
        messages
          .slice(i, i + 8)
          .map((message) => this.queue.sendMessage(encodeQueueMessage(message), { messageTimeToLive: -1 })),
      );
    }
  }
}
