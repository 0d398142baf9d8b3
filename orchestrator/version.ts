import { packageInfo } from './package-root.js';

/** The package version, read once from backproof's package.json. */
export const BACKPROOF_VERSION = packageInfo()?.version ?? '0.0.0';
