import type { ClusterStatus } from '../cluster/cluster-status.js';
import { formatAge } from '../core/format.js';
import { ago, badge, esc } from './html.js';

/**
 * The board's cluster section (admin tokens, cluster mode): each worker with its labels, load,
 * last heartbeat, whether it is alive and whether it reads this node's config, and the runs
 * waiting for a worker.
 */
export function clusterSection(c: ClusterStatus, now: Date): string {
  const alive = c.workers.filter((w) => w.alive).length;
  const waiting =
    c.waiting === 0 ? 'No run is waiting for a worker.' : `${c.waiting} run(s) waiting for a worker, the oldest for ${esc(formatAge(now.getTime() - Date.parse(c.oldestWaitingSince!)))}.`;
  const rows = c.workers
    .map(
      (w) => `<tr class="${w.alive ? '' : 'bad'}" data-worker="${esc(w.id)}">
<td>${w.alive ? badge('ok', 'alive') : badge('error', 'silent')}</td>
<td>${esc(w.id.slice(0, 8))}<div class="small muted">${esc(w.host)}:${w.pid}</div></td>
<td>${esc(Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '-')}</td>
<td>${w.running} / ${w.capacity}</td>
<td>${ago(w.heartbeatAt, now)}</td>
<td>${w.sameConfig ? 'same' : '<b class="err">differs</b>'}</td>
<td class="small">${esc(w.docker)}</td></tr>`,
    )
    .join('\n');
  return `<h2>Workers</h2><p>${alive} of ${c.workers.length} worker(s) alive. ${waiting}</p>
<table class="workers"><thead><tr><th>State</th><th>Worker</th><th>Labels</th><th>Running</th><th>Last heartbeat</th><th>Config</th><th>Engine</th></tr></thead>
<tbody>${rows}</tbody></table>`;
}
