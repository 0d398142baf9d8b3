import { main } from './main.js';

// A reader that goes away (`backproof status | head`, a closed terminal) ends what is printed,
// not the command: without a listener the EPIPE is thrown from a stream callback and the process
// dies with a stack trace, mid-run if it was running one. What the command still prints is
// dropped; it finishes (its runs recorded, its sandboxes removed) and exits with its own code.
for (const out of [process.stdout, process.stderr]) {
  out.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

// The process entry: bin/backproof.js loads the compiled copy of this file.
process.exitCode = await main(process.argv);
