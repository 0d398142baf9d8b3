/**
 * MySQL 8's UCA 9.0.0 collations (utf8mb4_0900_ai_ci, the MySQL 8 default, and its siblings)
 * do not exist in MariaDB 10.11, which has UCA 14.0.0 ones instead (utf8mb4_uca1400_*). A
 * restore of a good MySQL 8 dump into the sandbox would stop at the first CREATE TABLE; the dump
 * filter replaces each with the nearest collation the sandbox's server has:
 * - the same strength (ai_ci, as_ci, as_cs) and language tailoring, on UCA 14.0.0;
 * - NO PAD, as every _0900_ collation is: under PAD SPACE, 'a' and 'a ' would be equal and a
 *   unique index that held in MySQL could reject the dump's own rows;
 * - a binary one for _0900_bin;
 * then, on an older MariaDB without UCA 14 collations, the UCA 5.2 / 4.0 ones, and
 * utf8mb4_unicode_ci last. Languages MariaDB has no tailoring for fall back to the root order.
 */

/** MySQL's language codes in _0900_ names, and MariaDB's names for the same tailoring. */
const LANGUAGES: Record<string, string> = {
  is: 'icelandic',
  lv: 'latvian',
  ro: 'romanian',
  sl: 'slovenian',
  pl: 'polish',
  et: 'estonian',
  es: 'spanish',
  sv: 'swedish',
  tr: 'turkish',
  cs: 'czech',
  da: 'danish',
  lt: 'lithuanian',
  sk: 'slovak',
  es_trad: 'spanish2',
  la: 'roman',
  eo: 'esperanto',
  hu: 'hungarian',
  hr: 'croatian',
  vi: 'vietnamese',
  de_pb: 'german2',
};

const MYSQL_0900 = /^utf8mb4_(?:([a-z]{2}(?:_[a-z]+)?)_)?0900_(ai_ci|as_ci|as_cs(?:_ks)?|bin)$/i;

/** Whether `name` is one of MySQL 8's _0900_ collations. */
export function isMysql0900Collation(name: string): boolean {
  return MYSQL_0900.test(name);
}

/**
 * The collation to use instead of MySQL's `name` among `available` (lowercase full names),
 * or undefined when `name` is not a _0900_ collation or the server has it.
 */
export function replacementCollation(name: string, available: ReadonlySet<string>): string | undefined {
  const lower = name.toLowerCase();
  const m = MYSQL_0900.exec(lower);
  if (!m || available.has(lower)) return undefined;
  const language = m[1] ? LANGUAGES[m[1]] : undefined;
  const strength = m[2]!.replace(/_ks$/, '');
  const candidates: string[] = [];
  if (strength === 'bin') {
    candidates.push('utf8mb4_nopad_bin', 'utf8mb4_bin');
  } else {
    if (language) candidates.push(`utf8mb4_uca1400_${language}_nopad_${strength}`, `utf8mb4_uca1400_${language}_${strength}`);
    candidates.push(`utf8mb4_uca1400_nopad_${strength}`, `utf8mb4_uca1400_${strength}`);
    if (strength === 'as_cs') candidates.push('utf8mb4_nopad_bin', 'utf8mb4_bin');
    else candidates.push('utf8mb4_unicode_520_nopad_ci', 'utf8mb4_unicode_520_ci', 'utf8mb4_unicode_nopad_ci');
  }
  candidates.push('utf8mb4_unicode_ci');
  return candidates.find((c) => available.has(c)) ?? 'utf8mb4_unicode_ci';
}
