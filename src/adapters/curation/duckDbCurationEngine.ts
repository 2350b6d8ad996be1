import type * as ConvertFile from '../../curation/convertFile';
import type { CurationEngine, CurationEngineInput, CurationEngineResult } from '../../pipeline/curationPorts';

/**
 * The curation engine on DuckDB (src/curation/convertFile.ts). DuckDB's native binding (about 70 MB) is loaded by
 * the first conversion, in the process that converts: never by the Functions entry, another function or another
 * command (test/unit/curation/entryImports.test.ts).
 */
export class DuckDbCurationEngine implements CurationEngine {
  constructor(private readonly engine: ConvertFile.EngineOptions = {}) {}

  async convert(input: CurationEngineInput): Promise<CurationEngineResult> {
    const { convertFile } = require('../../curation/convertFile') as typeof ConvertFile;
    return convertFile({ ...input, engine: this.engine });
  }
}
