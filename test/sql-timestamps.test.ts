import t from 'tap';
import { parseTimestamp } from '../restore-sandboxes/probes/sql-probes.js';

// The freshness probe reads a column's newest value in whatever form the database keeps it.

t.test('epoch seconds and milliseconds, Julian days, ISO-like text with or without a zone', async (t) => {
  const at = '2026-11-27T22:30:00.000Z';
  t.equal(parseTimestamp('1795818600')?.toISOString(), at, 'epoch seconds');
  t.equal(parseTimestamp('1795818600.000')?.toISOString(), at, 'epoch seconds as float8');
  t.equal(parseTimestamp('1795818600000')?.toISOString(), at, 'epoch milliseconds');
  t.equal(parseTimestamp('2461372.4375')?.toISOString(), at, "SQLite's julianday()");
  t.equal(parseTimestamp('2026-11-27 22:30:00')?.toISOString(), at, 'no zone: UTC');
  t.equal(parseTimestamp('2026-11-27T23:30:00+01')?.toISOString(), at, 'PostgreSQL-style +01');
  t.equal(parseTimestamp('2026-11-27 23:30:00.000+0100')?.toISOString(), at);
  t.equal(parseTimestamp('2026-11-27T22:30:00Z')?.toISOString(), at);
  t.equal(parseTimestamp('2026-11-27')?.toISOString(), '2026-11-27T00:00:00.000Z', 'a date');
  t.equal(parseTimestamp('yesterday'), undefined);
  t.equal(parseTimestamp('2026-13-45 99:99'), undefined);
});
