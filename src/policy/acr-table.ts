/**
 * The ACR table: which `acr` values mean which level.
 *   1: one factor; 2: two factors of distinct kinds; 3: two factors, one phishing-resistant.
 * The `acr` issued is the requested value that was met, so an app asking for
 * the REFEDS value gets the REFEDS value back; otherwise Twofold's own URN.
 */
export type Level = 0 | 1 | 2 | 3;

export const TWOFOLD_ACR: Record<1 | 2 | 3, string> = {
  1: 'urn:twofold:acr:1',
  2: 'urn:twofold:acr:2',
  3: 'urn:twofold:acr:3',
};

export const DEFAULT_ACR_TABLE: Record<string, 1 | 2 | 3> = {
  [TWOFOLD_ACR[1]]: 1,
  [TWOFOLD_ACR[2]]: 2,
  [TWOFOLD_ACR[3]]: 3,
  'https://refeds.org/profile/sfa': 1,
  'http://schemas.openid.net/pape/policies/2007/06/multi-factor': 2,
  'https://refeds.org/profile/mfa': 2,
  'http://schemas.openid.net/pape/policies/2007/06/phishing-resistant': 3,
  'http://schemas.openid.net/pape/policies/2007/06/multi-factor-physical': 3,
};

export class AcrTable {
  constructor(readonly table: Record<string, 1 | 2 | 3> = DEFAULT_ACR_TABLE) {}

  levelOf(value: string): 1 | 2 | 3 | undefined {
    return Object.hasOwn(this.table, value) ? this.table[value] : undefined;
  }

  values(): string[] {
    return Object.keys(this.table);
  }

  /** The value to issue: the first requested value met at `level`, else Twofold's URN for it. */
  acrFor(level: Level, requested: string[]): string | undefined {
    if (level === 0) return undefined;
    const met = requested.find((v) => {
      const l = this.levelOf(v);
      return l !== undefined && l <= level;
    });
    return met ?? TWOFOLD_ACR[level];
  }
}
