/** installedRobot: a robot model whose image carries k3s, with the install plan applied. */
import { sha256Hex } from '../../sha256.ts';
import { executePlan } from '../execute.ts';
import { installPlan } from '../plans.ts';
import type { K3sNodeSpec } from '../settings.ts';
import { readK3sTemplates } from '../../../cli/bootstrap/k3s-templates.ts';
import { RobotModel, type RobotModelOptions } from './robot-model.ts';

export const IMAGE_BINARY = '/opt/k3s/k3s';
export const IMAGE_BINARY_CONTENT = 'k3s v1.33 arm64 (model)';

export async function installedRobot(
  spec: K3sNodeSpec,
  opts: Partial<RobotModelOptions> = {},
  /** templates/k3s/; default the repository's (a bundle must say where it is). */
  templatesDir?: string,
): Promise<RobotModel> {
  const m = new RobotModel({ ...opts, node: spec.nodeName });
  m.seed(IMAGE_BINARY, IMAGE_BINARY_CONTENT, 0o755);
  const sha256 = sha256Hex(IMAGE_BINARY_CONTENT);
  await executePlan(
    m,
    installPlan(spec, {
      binary: { kind: 'onRobot', path: IMAGE_BINARY, sha256 },
      reapScript: readK3sTemplates(templatesDir).reapScript,
    }),
  );
  m.journal.length = 0;
  return m;
}
