import type { SqlDialect } from '../probes/sql-probes.js';

/** SQL text for MySQL/MariaDB: quoting, and the probe shortcuts' queries. */

/** `name` as a backquoted identifier. */
export function quoteIdent(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

/** A string literal (backslashes escaped: the sessions here never set NO_BACKSLASH_ESCAPES). */
export function literal(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** `db.table` or `table` (in the current database), each part quoted. */
export function qualified(name: string): string {
  return splitName(name)
    .map((part) => quoteIdent(part))
    .join('.');
}

function splitName(name: string): string[] {
  const dot = name.indexOf('.');
  return dot > 0 ? [name.slice(0, dot), name.slice(dot + 1)] : [name];
}

/**
 * The probe queries. Table names compare exactly (BINARY): with lower_case_table_names=0, as on
 * Linux servers, `Orders` and `orders` are different tables. The newest value of a column is
 * read as epoch seconds in UTC (the session's time_zone is '+00:00'), or as the number itself
 * when the column holds epoch numbers.
 */
export const MYSQL_DIALECT: SqlDialect = {
  missingTables: (tables) => {
    const rows = tables.map((t) => {
      const parts = splitName(t);
      const schema = parts.length === 2 ? literal(parts[0]!) : 'DATABASE()';
      return `SELECT ${literal(t)} AS t, ${schema} AS s, ${literal(parts.at(-1)!)} AS n`;
    });
    return `SELECT v.t FROM (${rows.join(' UNION ALL ')}) v WHERE NOT EXISTS (SELECT 1 FROM information_schema.TABLES x WHERE x.TABLE_SCHEMA = v.s AND BINARY x.TABLE_NAME = BINARY v.n)`;
  },
  count: (table) => `SELECT COUNT(*) FROM ${qualified(table)}`,
  newest: (table, column) => {
    const max = `MAX(${quoteIdent(column)})`;
    return `SELECT CASE WHEN ${max} REGEXP '^-?[0-9]+([.][0-9]+)?$' THEN ${max} ELSE UNIX_TIMESTAMP(${max}) END FROM ${qualified(table)}`;
  },
  valueColumns: () =>
    `SELECT c.TABLE_NAME, c.COLUMN_NAME, IF(c.DATA_TYPE IN ('binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob'), 'binary', 'text')
       FROM information_schema.COLUMNS c JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
      WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE'
        AND c.DATA_TYPE IN ('char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob')
      ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION LIMIT 100`,
  sampleHex: (table, column, binary, n) =>
    `SELECT HEX(${binary ? `SUBSTRING(${quoteIdent(column)}, 1, 256)` : `CONVERT(LEFT(${quoteIdent(column)}, 256) USING utf8mb4)`}) FROM ${qualified(table)} WHERE ${quoteIdent(column)} IS NOT NULL LIMIT ${n}`,
};
