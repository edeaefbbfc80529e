import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { readAddonTemplates, renderSiteAddons } from '../agent/site/addons.ts';
import { parseSiteSpec } from '../agent/site/spec.ts';
import { renderLabSiteSpec } from './lab.ts';
import { labAddonImages, type RealNodeBundle } from './node/real-node.ts';

const images = labAddonImages({
  multusImage: 'edgectl.local/multus-thin:v4.2.2-k',
  whereaboutsImage: 'edgectl.local/whereabouts:v0.9.2-k',
  cniPluginsImage: 'edgectl.local/cni-plugins:k',
} as RealNodeBundle);

test("with real nodes, the lab's site runs its addons from the images the nodes import", () => {
  const spec = parseSiteSpec(parse(renderLabSiteSpec({ site: 'a', subnet: '10.77.1' }, images)));
  const running = renderSiteAddons(readAddonTemplates(), { site: 'a', epoch: 1, images: spec.addons?.images })
    .flatMap((o) => {
      const pod = (o as { spec?: { template?: { spec?: Record<string, { image: string }[]> } } }).spec
        ?.template?.spec;
      return [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])].map((c) => c.image);
    })
    .sort();
  assert.deepEqual(running, [
    'edgectl.local/cni-plugins:k',
    'edgectl.local/multus-thin:v4.2.2-k',
    'edgectl.local/whereabouts:v0.9.2-k',
  ]);
});

test('a lite lab keeps the pinned images (it runs no pods)', () => {
  const spec = parseSiteSpec(parse(renderLabSiteSpec({ site: 'a', subnet: '10.77.1' })));
  assert.equal(spec.addons, undefined);
});
