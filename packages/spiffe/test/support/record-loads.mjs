// `node --import ./record-loads.mjs`: appends the URL of every module resolved through the ESM
// loader to the file named by PRECINCT_LOAD_LOG, one a line. The entry-point test reads it
// to see what importing an entry point really loads (not what its source seems to import).
import { register } from 'node:module';

register('./record-loads-hooks.mjs', import.meta.url, {
  data: { log: process.env.PRECINCT_LOAD_LOG },
});
