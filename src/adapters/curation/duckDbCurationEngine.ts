import type * as ConvertFile from '../../curation/convertFile';
import type { CurationEngine, CurationEngineInput, CurationEngineResult } from '../../pipeline/curationPorts';

/**
 * Conversions one process runs at once. The Functions host hands a process up to host.json `batchSize` (16) queue
 * messages together; 16 engines of 256 MB each would not fit a 2 GB instance, so the others wait their turn (the
 * host keeps their messages invisible meanwhile).
 */
export const CONVERSIONS_PER_PROCESS = 2;

/**
 * The curation engine on DuckDB (src/curation/convertFile.ts). DuckDB's native binding (about 70 MB) is loaded by
 * the first conversion, in the process that converts: never by the Functions entry, another function or another
 * command (test/unit/curation/entryImports.test.ts).
 */
export class DuckDbCurationEngine implements CurationEngine {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly engine: ConvertFile.EngineOptions = {},
    private readonly limit = CONVERSIONS_PER_PROCESS,
    /** The conversion (tests replace it); by default convertFile, required with the first conversion. */
    private readonly convertFile: (input: ConvertFile.ConvertFileInput) => Promise<CurationEngineResult> = (input) =>
      (require('../../curation/convertFile') as typeof ConvertFile).convertFile(input),
  ) {}

  async convert(input: CurationEngineInput): Promise<CurationEngineResult> {
    while (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running += 1;
    try {
      return await this.convertFile({ ...input, engine: this.engine });
    } finally {
      this.running -= 1;
      this.waiting.shift()?.();
    }
  }
}
