import type { DestinationOptions } from './schema.js';

/**
 * Built-in destination groups: the big mailbox providers, found by recipient domain and, for custom
 * domains hosted there, by MX host. Their limits are conservative defaults, not published numbers
 * (none of these receivers publishes a per-sender rate): enough to keep a single sending IP out
 * of trouble, and meant to be overridden. See docs/destinations.md.
 */
export const builtinDestinations = {
  gmail: {
    domains: ['gmail.com', 'googlemail.com'],
    // Google Workspace domains: MX at aspmx.l.google.com, alt*.aspmx.l.google.com, smtp.google.com.
    mx: ['google.com', 'googlemail.com'],
    rate: { max: 20, per: '1s' },
    maxConnections: 5,
  },
  microsoft: {
    domains: ['outlook.com', 'hotmail.com', 'live.com', 'msn.com', 'hotmail.co.uk', 'outlook.fr', 'hotmail.fr', 'live.co.uk'],
    // Microsoft 365 tenants: MX at <tenant>.mail.protection.outlook.com; consumer: *.olc.protection.outlook.com.
    mx: ['protection.outlook.com', 'outlook.com'],
    rate: { max: 10, per: '1s' },
    maxConnections: 3,
  },
  yahoo: {
    domains: ['yahoo.com', 'yahoo.co.uk', 'yahoo.fr', 'ymail.com', 'rocketmail.com', 'aol.com', 'aim.com'],
    mx: ['yahoodns.net'],
    rate: { max: 10, per: '1s' },
    maxConnections: 3,
  },
  icloud: {
    domains: ['icloud.com', 'me.com', 'mac.com'],
    mx: ['mail.icloud.com'],
    rate: { max: 5, per: '1s' },
    maxConnections: 2,
  },
} as const satisfies Record<string, DestinationOptions>;
