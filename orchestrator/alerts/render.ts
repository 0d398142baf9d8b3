import { formatAge, formatBytes, formatSeconds } from '../core/format.js';
import { html, type SafeHtml } from '../core/html.js';
import { formatInstant, isResolved, type Alert, type AlertCondition } from './alert.js';

/**
 * How an alert reads: the email subject, plain-text and HTML bodies, and the webhook payloads
 * (generic JSON, Slack, Microsoft Teams MessageCard). Pure functions; every piece of text that
 * comes from a client, a policy or a backup is escaped for the format it lands in.
 */

const LABELS: Record<AlertCondition, string> = {
  fail: 'FAIL',
  error: 'ERROR',
  recovery: 'RESOLVED',
  stale: 'STALE',
  missing: 'MISSING',
  size_anomaly: 'SIZE ANOMALY',
  rto_exceeded: 'RTO EXCEEDED',
  overdue: 'OVERDUE',
  delivery_failed: 'DELIVERY FAILED',
  no_worker: 'NO WORKER',
  coverage: 'COVERAGE',
};

const MEANING: Record<AlertCondition, string> = {
  fail: "A backup failed verification: the client's data is at risk.",
  error: "backproof could not verify the backup: the verification itself failed, not (as far as we know) the backup.",
  recovery: 'The policy verifies again.',
  stale: 'No new backup within the RPO target.',
  missing: 'An expected backup is missing.',
  size_anomaly: 'The backup is much smaller than usual.',
  rto_exceeded: 'Restoring took longer than the RTO target.',
  overdue: 'backproof has not verified this policy on schedule.',
  delivery_failed: 'An alert could not be delivered.',
  no_worker: 'No live worker may run this policy: its scheduled runs wait in the queue.',
  coverage: 'An older restore point the client keeps did not restore, or too few were proven restorable recently (retention coverage).',
};

/** `FAIL`, `REMINDER FAIL`, `RESOLVED`. */
export function stateLabel(alert: Alert): string {
  if (isResolved(alert)) return 'RESOLVED';
  return alert.state === 'reminder' ? `REMINDER ${LABELS[alert.condition]}` : LABELS[alert.condition];
}

/** The first line of every rendering: what this notice is. */
export function headline(alert: Alert): string {
  const label = LABELS[alert.condition];
  if (isResolved(alert)) {
    return alert.condition === 'recovery' ? 'Resolved: the policy verifies again. No action needed.' : `Resolved: the ${label.toLowerCase()} condition is over. No action needed.`;
  }
  if (alert.state === 'reminder') return `Reminder: still unresolved. ${MEANING[alert.condition]}`;
  return MEANING[alert.condition];
}

/** `[backproof] FAIL acme / acme-shop-db: checksum_mismatch`; one line, at most 200 characters. */
export function renderSubject(alert: Alert): string {
  const codes = [...new Set(alert.reasons.map((r) => r.code))];
  const tail = isResolved(alert)
    ? alert.summary
    : codes.length > 0
      ? codes.slice(0, 3).join(', ') + (codes.length > 3 ? ` +${codes.length - 3}` : '')
      : alert.summary;
  const subject = `[backproof] ${stateLabel(alert)} ${alert.client.name} / ${alert.policy}: ${tail}`.replace(/[\r\n\t]+/g, ' ');
  return subject.length > 200 ? subject.slice(0, 199) + '…' : subject;
}

/** Facts about the run, label → value, in reading order. */
export function runFacts(alert: Alert): [string, string][] {
  const facts: [string, string][] = [
    ['Client', `${alert.client.displayName} (${alert.client.name})`],
    ['Policy', `${alert.policy} (${alert.kind})`],
    ['Condition', `${alert.condition}, ${alert.state}`],
    ['Occurred', formatInstant(alert.occurredAt)],
  ];
  if (alert.since) facts.push(['Since', formatInstant(alert.since)]);
  const run = alert.run;
  if (run) {
    facts.push(['Run', run.id]);
    facts.push(['Verdict', run.verdict ?? 'none (did not finish)']);
    facts.push(['Started', formatInstant(run.startedAt)]);
    if (run.durationMs !== null) facts.push(['Duration', formatSeconds(run.durationMs)]);
    if (run.backup) {
      const b = run.backup;
      facts.push(['Backup', `${b.key} (${formatBytes(b.size)}, taken ${formatInstant(b.backupTime)}, ${formatAge(b.ageMs)} old)`]);
    }
    const m = run.metrics;
    if (m.rpoMeasuredMs !== undefined) facts.push(['RPO', withTarget(formatAge(m.rpoMeasuredMs), m.rpoTargetMs, m.rpoMeasuredMs)]);
    if (m.rtoMeasuredMs !== undefined) facts.push(['RTO', withTarget(formatSeconds(m.rtoMeasuredMs), m.rtoTargetMs, m.rtoMeasuredMs)]);
  }
  return facts;
}

function withTarget(shown: string, target: number | undefined, measured: number): string {
  if (target === undefined) return shown;
  return `${shown} (target ${formatAge(target)}${measured > target ? ', exceeded' : ''})`;
}

function heading(alert: Alert): string {
  return `${stateLabel(alert)}: ${alert.client.name} / ${alert.policy} (${alert.client.displayName})`;
}

export function renderText(alert: Alert): string {
  const lines: string[] = [heading(alert), headline(alert), alert.summary, ''];
  if (alert.reasons.length > 0) {
    lines.push('Reasons');
    for (const r of alert.reasons) lines.push(`  - ${r.code}: ${r.message}`);
    lines.push('');
  }
  lines.push('Next steps');
  alert.nextSteps.forEach((s, i) => lines.push(`  ${i + 1}. ${s}`));
  lines.push('');
  const facts = runFacts(alert);
  const width = Math.max(...facts.map(([k]) => k.length));
  for (const [k, v] of facts) lines.push(`${k.padEnd(width)}  ${v}`);
  if (alert.run && alert.run.phases.length > 0) {
    lines.push('', 'Phases');
    const w = Math.max(...alert.run.phases.map((p) => p.name.length));
    for (const p of alert.run.phases) lines.push(`  ${p.name.padEnd(w)}  ${formatSeconds(p.durationMs).padStart(7)}  ${p.outcome}`);
  }
  lines.push('', `Alert ${alert.id}`, '-- backproof');
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// HTML (inline styles only, no links, no images), through core/html.ts's template

/** The colour of a notice: red for a bad backup, amber for our own trouble, green when resolved. */
export function colorOf(alert: Alert): string {
  if (isResolved(alert)) return '#067647';
  switch (alert.condition) {
    case 'fail':
    case 'missing':
    case 'stale':
    case 'size_anomaly':
      return '#b42318';
    default:
      return '#b54708';
  }
}

const OUTCOME_COLORS: Record<string, string> = { ok: '#067647', fail: '#b42318', error: '#b54708', skipped: '#667085' };

export function renderHtml(alert: Alert): string {
  const color = colorOf(alert);
  const cell = 'padding:4px 8px;border-bottom:1px solid #eaecf0;vertical-align:top;';
  const section = (title: string, body: SafeHtml): SafeHtml => html`<h3 style="margin:20px 0 6px;font-size:15px;color:#101828;">${title}</h3>${body}`;
  const parts: SafeHtml[] = [];
  parts.push(
    html`<div style="border-left:6px solid ${color};padding:8px 14px;background:#f9fafb;"><div style="font-size:18px;font-weight:bold;color:${color};">${heading(alert)}</div><div style="margin-top:4px;color:#344054;">${headline(alert)}</div><div style="margin-top:4px;color:#101828;">${alert.summary}</div></div>`,
  );
  if (alert.reasons.length > 0) {
    const items = alert.reasons.map((r) => html`<li style="margin:3px 0;"><code style="font-family:monospace;background:#f2f4f7;padding:0 3px;">${r.code}</code> ${r.message}</li>`);
    parts.push(section('Reasons', html`<ul style="margin:0;padding-left:20px;">${items}</ul>`));
  }
  const steps = alert.nextSteps.map((s) => html`<li style="margin:3px 0;">${s}</li>`);
  parts.push(section('Next steps', html`<ol style="margin:0;padding-left:20px;">${steps}</ol>`));
  const facts = runFacts(alert).map(([k, v]) => html`<tr><td style="${cell}color:#667085;white-space:nowrap;">${k}</td><td style="${cell}">${v}</td></tr>`);
  parts.push(section('Details', html`<table style="border-collapse:collapse;font-size:13px;">${facts}</table>`));
  if (alert.run && alert.run.phases.length > 0) {
    const head = ['Phase', 'Duration', 'Outcome'].map((h) => html`<th style="${cell}text-align:left;color:#667085;">${h}</th>`);
    const rows = alert.run.phases.map(
      (p) =>
        html`<tr><td style="${cell}">${p.name}</td><td style="${cell}text-align:right;font-family:monospace;">${formatSeconds(p.durationMs)}</td><td style="${cell}color:${OUTCOME_COLORS[p.outcome] ?? '#101828'};">${p.outcome}</td></tr>`,
    );
    parts.push(section('Phases', html`<table style="border-collapse:collapse;font-size:13px;"><tr>${head}</tr>${rows}</table>`));
  }
  parts.push(html`<p style="margin-top:20px;font-size:12px;color:#667085;">Alert ${alert.id} &middot; backproof</p>`);
  return html`<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"></head><body style="margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#101828;">${parts}</body></html>`.toString();
}

// ---------------------------------------------------------------------------------------------
// Webhook payloads

export type WebhookPreset = 'generic' | 'slack' | 'teams';

export interface GenericPayload {
  version: 1;
  alert: Alert;
}

export function genericPayload(alert: Alert): GenericPayload {
  return { version: 1, alert };
}

/** Slack mrkdwn and Teams card text: &, < and > are special (links, mentions, HTML). */
export function escapeMarkup(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export interface SlackSection {
  type: 'section';
  text: { type: 'mrkdwn'; text: string };
}
export interface SlackPayload {
  text: string;
  blocks: SlackSection[];
}

/** Slack limits a section's text to 3,000 characters. */
const SLACK_SECTION_MAX = 3000;

function slackSection(text: string): SlackSection {
  const t = text.length > SLACK_SECTION_MAX ? text.slice(0, SLACK_SECTION_MAX - 1) + '…' : text;
  return { type: 'section', text: { type: 'mrkdwn', text: t } };
}

export function slackPayload(alert: Alert): SlackPayload {
  const s = escapeMarkup;
  const blocks: SlackSection[] = [slackSection(`*${s(heading(alert))}*\n${s(headline(alert))}\n${s(alert.summary)}`)];
  if (alert.reasons.length > 0) blocks.push(slackSection(`*Reasons*\n${alert.reasons.map((r) => `• \`${s(r.code)}\` ${s(r.message)}`).join('\n')}`));
  blocks.push(slackSection(`*Next steps*\n${alert.nextSteps.map((x, i) => `${i + 1}. ${s(x)}`).join('\n')}`));
  blocks.push(slackSection(runFacts(alert).map(([k, v]) => `*${k}:* ${s(v)}`).join('\n')));
  if (alert.run && alert.run.phases.length > 0) {
    const w = Math.max(...alert.run.phases.map((p) => p.name.length));
    const rows = alert.run.phases.map((p) => `${p.name.padEnd(w)}  ${formatSeconds(p.durationMs).padStart(7)}  ${p.outcome}`);
    blocks.push(slackSection(`*Phases*\n\`\`\`${s(rows.join('\n'))}\`\`\``));
  }
  return { text: s(renderSubject(alert)), blocks };
}

export interface TeamsFact {
  name: string;
  value: string;
}
export interface TeamsMessageCard {
  '@type': 'MessageCard';
  '@context': 'https://schema.org/extensions';
  summary: string;
  themeColor: string;
  title: string;
  sections: { facts: TeamsFact[]; text: string }[];
}

/** A legacy Office 365 connector card; Teams renders its text as Markdown with some HTML, so &, < and > are escaped. */
export function teamsPayload(alert: Alert): TeamsMessageCard {
  const e = escapeMarkup;
  const facts: TeamsFact[] = runFacts(alert).map(([name, value]) => ({ name, value: e(value) }));
  if (alert.run && alert.run.phases.length > 0) {
    facts.push({ name: 'Phases', value: alert.run.phases.map((p) => `${e(p.name)} ${formatSeconds(p.durationMs)} ${p.outcome}`).join(', ') });
  }
  const paragraphs = [e(headline(alert)), e(alert.summary)];
  if (alert.reasons.length > 0) paragraphs.push('**Reasons**\n\n' + alert.reasons.map((r) => `- \`${e(r.code)}\` ${e(r.message)}`).join('\n'));
  paragraphs.push('**Next steps**\n\n' + alert.nextSteps.map((x, i) => `${i + 1}. ${e(x)}`).join('\n'));
  return {
    '@type': 'MessageCard',
    '@context': 'https://schema.org/extensions',
    summary: renderSubject(alert),
    themeColor: colorOf(alert).slice(1).toUpperCase(),
    title: e(heading(alert)),
    sections: [{ facts, text: paragraphs.join('\n\n') }],
  };
}

export function webhookPayload(preset: WebhookPreset, alert: Alert): GenericPayload | SlackPayload | TeamsMessageCard {
  switch (preset) {
    case 'generic':
      return genericPayload(alert);
    case 'slack':
      return slackPayload(alert);
    case 'teams':
      return teamsPayload(alert);
  }
}
