import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { BackproofError } from '../core/errors.js';
import { renderTable } from '../../reports/text-table.js';
import { describeScope, TokenStore, type TokenScope } from '../web/token-store.js';
import { configPath, openStore, storeSettings, type GlobalOptions } from './context.js';

export function registerTokens(program: Command, setExit: (code: number) => void): void {
  const tokens = program.command('tokens').description('tokens of the dashboard, the JSON API and /metrics (backproof serve); only their sha256 is stored');
  tokens
    .command('create')
    .description('make a token and print it once: --admin sees every client, --client C only client C')
    .option('--admin', 'every client')
    .option('--client <name>', 'only this client: its policies, runs, reports and metrics')
    .option('--name <name>', 'a name to list and revoke it by (default admin-XXXXXXXX or CLIENT-XXXXXXXX)')
    .option('--json', 'JSON on stdout')
    .action(async (opts: { admin?: boolean; client?: string; name?: string; json?: boolean }, cmd: Command) => {
      if (Boolean(opts.admin) === (opts.client !== undefined)) {
        throw new BackproofError('usage', 'give exactly one of --admin or --client NAME');
      }
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const scope: TokenScope = opts.client !== undefined ? { kind: 'client', client: opts.client } : { kind: 'admin' };
      if (scope.kind === 'client') await checkClient(global, scope.client);
      const store = await openStore(await storeSettings(global), global);
      try {
        const { token, info } = await new TokenStore(store.executor, store.schema).create({ scope, ...(opts.name !== undefined ? { name: opts.name } : {}) });
        if (opts.json) {
          process.stdout.write(JSON.stringify({ ...info, token }, null, 2) + '\n');
        } else {
          process.stdout.write(token + '\n');
          process.stderr.write(`token ${info.name} (${describeScope(info.scope)}, id ${info.id}) created; it is shown this once: keep it in a secret store\n`);
        }
      } finally {
        await store.close();
      }
      setExit(0);
    });
  tokens
    .command('list')
    .description('live tokens: name, scope, created, last used (never the token)')
    .option('--all', 'also revoked tokens')
    .option('--json', 'JSON on stdout')
    .action(async (opts: { all?: boolean; json?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const store = await openStore(await storeSettings(global), global);
      try {
        const list = await new TokenStore(store.executor, store.schema).list({ includeRevoked: Boolean(opts.all) });
        if (opts.json) {
          process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        } else if (list.length === 0) {
          process.stdout.write(`no ${opts.all ? '' : 'live '}tokens; make one with backproof tokens create --admin\n`);
        } else {
          const time = (iso: string | null): string => (iso ? iso.slice(0, 16).replace('T', ' ') + 'Z' : '-');
          const rows = list.map((t) => [t.id.slice(0, 8), t.name, describeScope(t.scope), time(t.createdAt), time(t.lastUsedAt), ...(opts.all ? [time(t.revokedAt)] : [])]);
          process.stdout.write(renderTable(['ID', 'NAME', 'SCOPE', 'CREATED', 'LAST USED', ...(opts.all ? ['REVOKED'] : [])], rows) + '\n');
        }
      } finally {
        await store.close();
      }
      setExit(0);
    });
  tokens
    .command('revoke')
    .description('revoke a token at once, by id (8+ characters) or name')
    .argument('<id-or-name>', 'the token')
    .action(async (key: string, _opts: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const store = await openStore(await storeSettings(global), global);
      try {
        const info = await new TokenStore(store.executor, store.schema).revoke(key);
        process.stderr.write(`token ${info.name} (${describeScope(info.scope)}, id ${info.id}) revoked\n`);
      } finally {
        await store.close();
      }
      setExit(0);
    });
}

/** A client token for a client the config does not know is most likely a typo: refuse it. */
async function checkClient(global: GlobalOptions, client: string): Promise<void> {
  let names: string[];
  try {
    names = (await loadConfig(configPath(global))).clients.map((c) => c.name);
  } catch {
    process.stderr.write(`warning: the config could not be read; client ${client} is not checked against it\n`);
    return;
  }
  if (!names.includes(client)) {
    throw new BackproofError('unknown_client', `no client named ${JSON.stringify(client)} in ${configPath(global)}; clients: ${names.join(', ')}`);
  }
}
