import type { ClusterStatus } from '../cluster/cluster-status.js';
import { formatAge } from '../core/format.js';
import { html, joinHtml, type SafeHtml } from '../core/html.js';
import { ago, badge } from './html.js';

/**
 * The board's cluster section (admin tokens, cluster mode): each worker with its labels, load,
 * last heartbeat, whether it is alive and whether it reads this node's config, and the runs
 * waiting for a worker.
 */
export function clusterSection(c: ClusterStatus, now: Date): SafeHtml {
  const alive = c.workers.filter((w) => w.alive).length;
  const waiting =
    c.waiting === 0 ? 'No run is waiting for a worker.' : `${c.waiting} run(s) waiting for a worker, the oldest for ${formatAge(now.getTime() - Date.parse(c.oldestWaitingSince!))}.`;
  const rows = c.workers.map(
    (w) => html`<tr class="${w.alive ? '' : 'bad'}" data-worker="${w.id}">
<td>${w.alive ? badge('ok', 'alive') : badge('error', 'silent')}</td>
<td>${w.id.slice(0, 8)}<div class="small muted">${w.host}:${w.pid}</div></td>
<td>${Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '-'}</td>
<td>${w.running} / ${w.capacity}</td>
<td>${ago(w.heartbeatAt, now)}</td>
<td>${w.sameConfig ? 'same' : html`<b class="err">differs</b>`}</td>
<td class="small">${w.docker}</td></tr>`,
  );
  return html`<h2>Workers</h2><p>${alive} of ${c.workers.length} worker(s) alive. ${waiting}</p>
<table class="workers"><thead><tr><th>State</th><th>Worker</th><th>Labels</th><th>Running</th><th>Last heartbeat</th><th>Config</th><th>Engine</th></tr></thead>
<tbody>${joinHtml(rows, '\n')}</tbody></table>`;
}
