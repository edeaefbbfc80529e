/** The robots the k3s tests render for: one server-capable robot and one worker of site harbor. */
import { K3sSettingsSchema, type K3sNodeSpec } from '../settings.ts';

export const SERVER_SPEC: K3sNodeSpec = {
  site: 'harbor',
  nodeName: 'r1',
  ...K3sSettingsSchema.parse({
    nodeIp: '10.20.0.11',
    flannelIface: 'wlan0',
    labels: { 'robots.example.com/model': 'spot-core' },
    tlsSans: ['harbor-leader.local'],
  }),
};

export const WORKER_SPEC: K3sNodeSpec = {
  site: 'harbor',
  nodeName: 'vac-3',
  ...K3sSettingsSchema.parse({ nodeIp: '10.20.0.23', flannelIface: 'wlp2s0', serverCapable: false }),
};

export const K3S_SHA256 = 'c0ffee'.padEnd(64, '0');
