import type { Services } from '../services.ts';
import { views, type Speaker } from '../../interactions/render.ts';

/**
 * A factor's name in the person's language: its catalogue entry (`<id>.label`, each factor's own messages), else the
 * label its descriptor declares, else its id.
 */
export function factorName(services: Services, speaker: Speaker, id: string): string {
  const key = `${id}.label`;
  const { catalogue } = views();
  if (catalogue.has(speaker.lang, key) || catalogue.has('en', key)) return speaker.t(key);
  const label = (services.factors.registry.get(id)?.factor as { label?: unknown } | undefined)?.label;
  return typeof label === 'string' ? label : id;
}
