import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { REPO } from '../helpers/command.js';
import { matrixTable } from './cells.js';

// The README's fault-matrix table is the one cells.ts defines (and the fault tests check).
t.test('README.md shows the fault matrix as cells.ts defines it', async (t) => {
  const readme = await fs.readFile(path.join(REPO, 'README.md'), 'utf8');
  const table = matrixTable();
  t.ok(readme.includes(table), `README.md's "Fault matrix" table must read:\n${table}`);
});
