import { main } from './main.js';

// The process entry: bin/backproof.js loads the compiled copy of this file.
process.exitCode = await main(process.argv);
