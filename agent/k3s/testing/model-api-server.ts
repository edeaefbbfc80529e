/**
 * `node agent/k3s/testing/model-api-server.ts <objects.json>`: the robot model's k3s API server, as
 * the child of a leader's ChildObjectClient (agent/site/kube-child.ts). On a robot that child is
 * edgectl-agent-kube.cjs, an HTTPS client of k3s; over the model (model-robot.ts) it is this file,
 * which keeps the site's objects in a JSON file between children, as k3s keeps them between a
 * leader's bursts of calls. So the model's leader runs the robot's path, a child per burst, and
 * holds no copy of the cluster's objects in its own process, as a robot's leader holds none.
 */
import { renameSync, readFileSync, writeFileSync } from 'node:fs';
import { InMemoryObjectClient } from '../../site/in-memory-client.ts';
import { serveObjectClient } from '../../site/kube-child.ts';
import type { DeleteOptions, ObjectRef } from '../../site/object-client.ts';
import type { KubeObject } from '../../site/objects.ts';

class FileObjectClient extends InMemoryObjectClient {
  private readonly file: string;
  constructor(file: string) {
    super();
    this.file = file;
    let saved: KubeObject[] = [];
    try {
      saved = JSON.parse(readFileSync(file, 'utf8')) as KubeObject[];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    for (const o of saved) this.create(o);
  }
  private save(): void {
    writeFileSync(`${this.file}.tmp`, JSON.stringify(this.all()));
    renameSync(`${this.file}.tmp`, this.file);
  }
  override async apply(obj: KubeObject): Promise<KubeObject> {
    const r = await super.apply(obj);
    this.save();
    return r;
  }
  override async mergePatch(
    ref: ObjectRef,
    patch: Record<string, unknown>,
    resourceVersion?: string,
  ): Promise<KubeObject> {
    const r = await super.mergePatch(ref, patch, resourceVersion);
    this.save();
    return r;
  }
  override async delete(ref: ObjectRef, opts?: DeleteOptions): Promise<boolean> {
    const r = await super.delete(ref, opts);
    this.save();
    return r;
  }
}

const file = process.argv[2];
if (file === undefined) {
  process.stderr.write('usage: node model-api-server.ts <objects.json>\n');
  process.exit(2);
}
serveObjectClient(() => new FileObjectClient(file));
