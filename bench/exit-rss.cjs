// Preloaded with `node --require` by bench/process-cost.ts: at exit, writes the process's peak
// resident set size (KiB, getrusage's ru_maxrss) to the file named by BENCH_RSS_FILE.
const fs = require('node:fs');

process.on('exit', () => {
  const file = process.env.BENCH_RSS_FILE;
  if (file) fs.writeFileSync(file, String(process.resourceUsage().maxRSS));
});
