import type { AlertConditionName, AlertsConfig, ChannelConfig, ChannelOf, ChannelType } from '../core/config-types.js';
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

interface ChannelCommon {
  name: string;
  secrets: readonly string[];
  logger: Logger;
  retry: { maxAttempts: number };
}

/** One channel per name of CHANNEL_TYPES, built from its own config block; a type without one does not compile. */
export const CHANNEL_FACTORIES: { readonly [T in ChannelType]: (c: ChannelOf<T>, common: ChannelCommon) => AlertChannel } = {
  email: (c, common) =>
    new EmailChannel({
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
    }),
  webhook: (c, common) => new WebhookChannel({ ...common, url: c.url, preset: c.preset, headers: c.headers, timeoutMs: c.timeoutMs }),
};

function makeChannel(c: ChannelConfig, alerts: AlertsConfig, secrets: readonly string[], logger: Logger): AlertChannel {
  const make = CHANNEL_FACTORIES[c.type] as (c: ChannelConfig, common: ChannelCommon) => AlertChannel;
  return make(c, { name: c.name, secrets, logger, retry: { maxAttempts: alerts.maxAttempts } });
}

export async function closeChannels(channels: Map<string, RoutedChannel>): Promise<void> {
  await Promise.allSettled([...channels.values()].map((c) => c.channel.close()));
}
