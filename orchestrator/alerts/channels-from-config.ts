import type { AlertConditionName, AlertsConfig, ChannelConfig } from '../core/config-types.js';
import type { Logger } from '../core/logger.js';
import type { AlertChannel } from './channel.js';
import { EmailChannel } from './email-channel.js';
import { WebhookChannel } from './webhook-channel.js';

/** A configured channel and the conditions it is told about. */
export interface RoutedChannel {
  channel: AlertChannel;
  conditions: ReadonlySet<AlertConditionName>;
}

/** The channels of `alerts.channels`, by name, ready to deliver; close them with `closeChannels`. */
export function channelsFromConfig(alerts: AlertsConfig, secrets: readonly string[], logger: Logger): Map<string, RoutedChannel> {
  const channels = new Map<string, RoutedChannel>();
  for (const c of alerts.channels) {
    channels.set(c.name, { channel: makeChannel(c, alerts, secrets, logger), conditions: new Set(c.conditions) });
  }
  return channels;
}

function makeChannel(c: ChannelConfig, alerts: AlertsConfig, secrets: readonly string[], logger: Logger): AlertChannel {
  const common = { name: c.name, secrets, logger, retry: { maxAttempts: alerts.maxAttempts } };
  switch (c.type) {
    case 'email':
      return new EmailChannel({
        ...common,
        host: c.host,
        port: c.port,
        secure: c.secure,
        startTls: c.startTls,
        tlsRejectUnauthorized: c.tlsRejectUnauthorized,
        ...(c.auth ? { auth: c.auth } : {}),
        from: c.from,
        to: c.to,
        cc: c.cc,
      });
    case 'webhook':
      return new WebhookChannel({ ...common, url: c.url, preset: c.preset, headers: c.headers, timeoutMs: c.timeoutMs });
  }
}

export async function closeChannels(channels: Map<string, RoutedChannel>): Promise<void> {
  await Promise.allSettled([...channels.values()].map((c) => c.channel.close()));
}
