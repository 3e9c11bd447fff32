// SPDX-License-Identifier: Apache-2.0
// The Helm chart, rendered without helm (helmrender: Go text/template + sprig + Helm's built-ins)
// for several value sets, then checked:
//   - the merged values against values.schema.json (ajv), as helm does;
//   - every object against the Kubernetes / Prometheus Operator schemas (kubernetes-models),
//     rejecting fields the schema does not know (a misspelt key is silently dropped by a cluster);
//   - invariants: Service ports and probes point at the container's ports, which match its flags;
//     the relay binary accepts the rendered config and flags (--check-config), and run with them
//     it answers the rendered readiness/liveness probes (gRPC health or GET /metrics, as the
//     kubelet asks) and exits 0 on SIGTERM within the drain (probe_live.js); the alert rules
//     pass `promtool check rules` and are deploy/prometheus/alerts.yml's, selecting the job name the
//     ServiceMonitor gives; the dashboard ConfigMap is deploy/grafana's file byte for byte;
//     the NetworkPolicy, PDB, HPA and ServiceMonitor select what they should;
//   - value sets that must not render (replicas > 1 with persistence, ...) fail with their message.
// Writes one JUnit <testcase> per value set to $XML_OUTPUT_FILE.
//
// usage: node chart_test.js --render BIN --chart DIR --values DIR --grafana FILE --alerts FILE
//          --relay BIN
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of ['render', 'chart', 'values', 'grafana', 'alerts', 'relay']) {
    if (!out[k]) throw new Error(`--${k} is required`);
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const RELEASE = 'sr';
const NAMESPACE = 'relay';
const tmpRoot = fs.mkdtempSync(path.join(process.env.TEST_TMPDIR || os.tmpdir(), 'chart-'));

let Ajv;
let modelsLoaded = false;
try {
  Ajv = require('ajv');
  require('kubernetes-models/v1/Service');
  require('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor');
  modelsLoaded = true;
} catch (e) {
  console.error(`npm packages missing (NODE_PATH=${process.env.NODE_PATH}): ${e.message}\n` +
    'run: bazel/install_deps.sh test');
}

// ---- schema validation ----

function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const candidates = group === 'monitoring.coreos.com'
    ? [`@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`]
    : [group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`];
  for (const c of candidates) {
    try {
      const mod = require(c);
      if (mod[kind]) return mod[kind];
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND' && e.code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw e;
    }
  }
  return null;
}

// Wraps an object tree in proxies that record which keys the validator reads; a key it never
// reads (and whose object it never iterates, as for a map of labels) is not in the schema.
function track(data, p, seen) {
  if (data === null || typeof data !== 'object') return data;
  const rec = { read: new Set(), iterated: false };
  seen.set(p, rec);
  const target = Array.isArray(data)
    ? data.map((v, i) => track(v, `${p}/${i}`, seen))
    : Object.fromEntries(Object.entries(data).map(([k, v]) => [k, track(v, `${p}/${k}`, seen)]));
  return new Proxy(target, {
    get(t, k, r) { if (typeof k === 'string') rec.read.add(k); return Reflect.get(t, k, r); },
    has(t, k) { if (typeof k === 'string') rec.read.add(k); return Reflect.has(t, k); },
    ownKeys(t) { rec.iterated = true; return Reflect.ownKeys(t); },
  });
}

function unknownFields(data, p, seen) {
  if (data === null || typeof data !== 'object') return [];
  const rec = seen.get(p);
  if (!rec) return [];
  const out = [];
  for (const [k, v] of Object.entries(data)) {
    const child = `${p}/${k}`;
    if (!Array.isArray(data) && !rec.iterated && !rec.read.has(k)) out.push(child);
    else out.push(...unknownFields(v, child, seen));
  }
  return out;
}

function validateObject(obj) {
  const Model = modelFor(obj.apiVersion, obj.kind);
  if (!Model) return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  const seen = new Map();
  try {
    Model.prototype.validate.call(track(obj, '', seen));
  } catch (e) {
    return [`schema: ${e.message}`];
  }
  return unknownFields(obj, '', seen).map((f) => `unknown field ${f}`);
}

// ---- helpers ----

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 60000, ...opts });
  if (r.error) return { status: -1, stdout: '', stderr: String(r.error) };
  return r;
}

function render(files, extra = []) {
  const argv = ['-chart', args.chart, '-release', RELEASE, '-namespace', NAMESPACE, ...extra];
  for (const f of files) argv.push('-f', path.join(args.values, f));
  return run(args.render, argv);
}

// `helm upgrade` keeps the generated control token and default user's password: lookup finds the
// Secrets of the installed release (helmrender -cluster), while a fresh install draws new ones.
function checkUpgradeKeepsSecrets() {
  const errors = [];
  const secretsOf = (r) => {
    if (r.status !== 0) { errors.push(`render failed: ${r.stderr}`); return new Map(); }
    return new Map(JSON.parse(r.stdout).manifests.map((m) => m.object)
      .filter((o) => o.kind === 'Secret').map((o) => [o.metadata.name, o]));
  };
  const token = (s) => b64((s.get(`${RELEASE}-shadowrelay-control-token`) || { data: {} }).data.token || '');
  const password = (s) => b64((s.get(`${RELEASE}-shadowrelay-users`) || { data: {} }).data['generated-password'] || '');
  const installed = secretsOf(render([]));
  const other = secretsOf(render([]));
  if (!token(installed) || !password(installed)) errors.push('install generated no token or password');
  if (token(installed) === token(other) || password(installed) === password(other)) {
    errors.push('two installs drew the same token or password');
  }
  const cluster = path.join(fs.mkdtempSync(path.join(tmpRoot, 'cluster-')), 'objects.json');
  fs.writeFileSync(cluster, JSON.stringify([...installed.values()]));
  const upgraded = secretsOf(render([], ['-upgrade', '-cluster', cluster]));
  if (token(upgraded) !== token(installed)) errors.push('upgrade changed the control token');
  if (password(upgraded) !== password(installed)) errors.push('upgrade changed the default user\'s password');
  const users = (s) => b64((s.get(`${RELEASE}-shadowrelay-users`) || { data: {} }).data['users.json'] || '');
  if (users(upgraded) !== users(installed)) errors.push('upgrade changed users.json');
  return errors;
}

function flagValue(argv, flag) {
  const i = argv.lastIndexOf(flag);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : undefined;
}

function portOf(hostPort) {
  const m = /:(\d+)$/.exec(hostPort || '');
  return m ? Number(m[1]) : undefined;
}

function labelsMatch(selector, labels) {
  return Object.entries(selector || {}).every(([k, v]) => labels && labels[k] === v);
}

function b64(s) { return Buffer.from(s, 'base64').toString('utf8'); }

// ---- invariants common to every rendered value set ----

function checkRendering(r, fail) {
  const objs = r.manifests.map((m) => m.object);
  const byKind = (kind) => objs.filter((o) => o.kind === kind);
  const fullname = `${RELEASE}-shadowrelay`;
  const values = r.values;

  const ids = new Set();
  for (const o of objs) {
    const id = `${o.kind}/${o.metadata.name}`;
    if (ids.has(id)) fail(`${id} rendered twice`);
    ids.add(id);
    if (o.kind !== 'ConfigMap' || !o.metadata.name.endsWith('-dashboard')) {
      if (o.metadata.namespace !== NAMESPACE) fail(`${id}: namespace ${o.metadata.namespace}`);
    }
    for (const e of validateObject(o)) fail(`${id}: ${e}`);
  }

  const workloads = objs.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
  if (workloads.length !== 1) { fail(`expected one workload, got ${workloads.length}`); return; }
  const wl = workloads[0];
  const pod = wl.spec.template;
  const podLabels = pod.metadata.labels;
  if (!labelsMatch(wl.spec.selector.matchLabels, podLabels)) fail('workload selector does not match its pod labels');
  const c = pod.spec.containers.find((x) => x.name === 'shadowrelay');
  if (!c) { fail('no container "shadowrelay"'); return; }
  const argv = c.args || [];
  if (argv[0] !== 'server') fail(`container args start with ${argv[0]}, not server`);

  // Ports: flags -> container ports.
  const relayPort = Number(flagValue(argv, '-p'));
  const controlPort = portOf(flagValue(argv, '--control-listen'));
  const metricsPort = portOf(flagValue(argv, '--metrics-listen'));
  if (relayPort !== values.relay.port) fail(`-p ${relayPort} != relay.port ${values.relay.port}`);
  if (controlPort !== values.controlApi.port) fail(`--control-listen port ${controlPort} != controlApi.port`);
  if (metricsPort !== values.metrics.port) fail(`--metrics-listen port ${metricsPort} != metrics.port`);
  const protocols = { tcp_only: ['TCP'], udp_only: ['UDP'], tcp_and_udp: ['TCP', 'UDP'] }[values.relay.mode];
  const cports = c.ports || [];
  const cportByName = new Map(cports.map((p) => [p.name, p]));
  for (const p of cports) {
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(p.name) || p.name.length > 15 || !/[a-z]/.test(p.name)) {
      fail(`container port name ${p.name} is not an IANA service name`);
    }
  }
  for (const proto of ['TCP', 'UDP']) {
    const p = cportByName.get(`relay-${proto.toLowerCase()}`);
    if (protocols.includes(proto)) {
      if (!p || p.containerPort !== relayPort || p.protocol !== proto) fail(`container port relay-${proto.toLowerCase()} does not match -p ${relayPort}/${proto}`);
    } else if (p) {
      fail(`mode ${values.relay.mode} but container port relay-${proto.toLowerCase()} exists`);
    }
  }
  const cc = cportByName.get('control');
  if (!cc || cc.containerPort !== controlPort || cc.protocol !== 'TCP') fail('container port control does not match --control-listen');
  const cm = cportByName.get('metrics');
  if (!cm || cm.containerPort !== metricsPort || cm.protocol !== 'TCP') fail('container port metrics does not match --metrics-listen');
  const userPorts = (values.users || []).filter((u) => u.port).map((u) => u.port)
    .concat(values.relay.extraPorts || []);
  for (const up of userPorts) {
    for (const proto of protocols) {
      if (!cports.some((p) => p.containerPort === up && p.protocol === proto)) fail(`dedicated port ${up}/${proto} not on the container`);
    }
  }

  // Services: selectors, target ports resolve to the container's ports with the same number.
  const services = byKind('Service');
  const relaySvc = services.find((s) => s.metadata.name === fullname);
  const controlSvc = services.find((s) => s.metadata.name === `${fullname}-control`);
  if (!relaySvc || !controlSvc) { fail('relay or control Service missing'); return; }
  for (const s of services) {
    if (!labelsMatch(s.spec.selector, podLabels)) fail(`Service ${s.metadata.name} does not select the pods`);
    for (const sp of s.spec.ports) {
      const target = typeof sp.targetPort === 'string' ? cportByName.get(sp.targetPort)
        : cports.find((p) => p.containerPort === (sp.targetPort || sp.port) && p.protocol === sp.protocol);
      if (!target) { fail(`Service ${s.metadata.name} port ${sp.name}: target ${sp.targetPort} is no container port`); continue; }
      if ((target.protocol || 'TCP') !== (sp.protocol || 'TCP')) fail(`Service ${s.metadata.name} port ${sp.name}: protocol ${sp.protocol} != container's ${target.protocol}`);
      if (sp.port !== target.containerPort) fail(`Service ${s.metadata.name} port ${sp.name}: ${sp.port} != container port ${target.containerPort} (ss:// URLs carry the container's port)`);
    }
  }
  if (relaySvc.spec.type !== values.service.type) fail(`relay Service type ${relaySvc.spec.type} != service.type ${values.service.type}`);
  if (controlSvc.spec.type !== 'ClusterIP') fail('control Service is not ClusterIP');
  const relayProtos = relaySvc.spec.ports.filter((p) => p.port === relayPort).map((p) => p.protocol).sort();
  if (JSON.stringify(relayProtos) !== JSON.stringify([...protocols].sort())) fail(`relay Service protocols ${relayProtos} for mode ${values.relay.mode}`);
  if (relaySvc.spec.ports.some((p) => p.port === controlPort || p.port === metricsPort)) fail('relay Service exposes the control API or metrics');
  const ctlPorts = controlSvc.spec.ports.map((p) => p.port).sort();
  if (JSON.stringify(ctlPorts) !== JSON.stringify([controlPort, metricsPort].sort())) fail(`control Service ports ${ctlPorts}`);
  if (relaySvc.spec.type === 'ClusterIP' && relaySvc.spec.externalTrafficPolicy) fail('externalTrafficPolicy on a ClusterIP Service');
  if (relaySvc.spec.type !== 'ClusterIP' && relaySvc.spec.externalTrafficPolicy !== values.service.externalTrafficPolicy) fail('externalTrafficPolicy not applied');

  // Probes: gRPC health on the control port, or GET /healthz on the metrics port.
  for (const kind of ['readinessProbe', 'livenessProbe']) {
    const probe = c[kind];
    if (!probe) { fail(`no ${kind}`); continue; }
    if (probe.grpc) {
      if (values.controlApi.tls.enabled) fail(`${kind}: gRPC probe against a TLS control API`);
      if (probe.grpc.port !== controlPort) fail(`${kind}: gRPC port ${probe.grpc.port} != control port ${controlPort}`);
    } else if (probe.httpGet) {
      const port = typeof probe.httpGet.port === 'string' ? (cportByName.get(probe.httpGet.port) || {}).containerPort : probe.httpGet.port;
      if (port !== metricsPort || probe.httpGet.path !== '/healthz') fail(`${kind}: httpGet ${probe.httpGet.port}${probe.httpGet.path} is not the metrics listener's /healthz`);
    } else {
      fail(`${kind}: neither grpc nor httpGet`);
    }
  }

  // Graceful stop: the grace period outlasts preStop + the drain deadline.
  const drain = Number(flagValue(argv, '--drain-timeout'));
  if (drain !== values.relay.drainTimeoutSeconds) fail(`--drain-timeout ${drain} != relay.drainTimeoutSeconds`);
  const preStop = c.lifecycle && c.lifecycle.preStop ? Number(c.lifecycle.preStop.exec.command[1]) : 0;
  if (!(pod.spec.terminationGracePeriodSeconds > drain + preStop)) fail(`terminationGracePeriodSeconds ${pod.spec.terminationGracePeriodSeconds} <= preStop ${preStop} + drain ${drain}`);

  // Security context of every container.
  const psc = pod.spec.securityContext || {};
  if (psc.runAsNonRoot !== true || !(psc.runAsUser > 0)) fail('pod does not run as non-root');
  if (pod.spec.automountServiceAccountToken !== false) fail('service account token mounted');
  for (const x of [...(pod.spec.initContainers || []), ...pod.spec.containers]) {
    const sc = x.securityContext || {};
    if (sc.readOnlyRootFilesystem !== true) fail(`${x.name}: root filesystem writable`);
    if (sc.allowPrivilegeEscalation !== false) fail(`${x.name}: privilege escalation allowed`);
    if (!sc.capabilities || !(sc.capabilities.drop || []).includes('ALL')) fail(`${x.name}: capabilities not dropped`);
    if (sc.privileged) fail(`${x.name}: privileged`);
    if (!x.resources || !x.resources.limits || !x.resources.requests) fail(`${x.name}: no resource requests/limits`);
  }

  // Volumes: every mount has a volume; every ConfigMap/Secret volume exists (or is the user's).
  const volumes = new Map((pod.spec.volumes || []).map((v) => [v.name, v]));
  const claimTemplates = new Set(((wl.spec.volumeClaimTemplates) || []).map((t) => t.metadata.name));
  const mounts = new Map();
  for (const x of [...(pod.spec.initContainers || []), ...pod.spec.containers]) {
    for (const m of x.volumeMounts || []) {
      if (!volumes.has(m.name) && !claimTemplates.has(m.name)) fail(`${x.name}: mount ${m.name} has no volume`);
      if (x.name === 'shadowrelay') mounts.set(m.mountPath, m.name);
    }
  }
  const secrets = new Map(byKind('Secret').map((s) => [s.metadata.name, s]));
  const configMaps = new Map(byKind('ConfigMap').map((s) => [s.metadata.name, s]));
  const external = [values.usersSecret, values.controlApi.existingSecret, values.controlApi.tls.secretName, values.metrics.tokenSecret].filter(Boolean);
  for (const v of volumes.values()) {
    if (v.secret && !secrets.has(v.secret.secretName) && !external.includes(v.secret.secretName)) fail(`volume ${v.name}: Secret ${v.secret.secretName} not rendered`);
    if (v.configMap && !configMaps.has(v.configMap.name)) fail(`volume ${v.name}: ConfigMap ${v.configMap.name} not rendered`);
    if (v.secret && v.secret.items) {
      const s = secrets.get(v.secret.secretName);
      for (const it of v.secret.items) {
        if (s && !(it.key in (s.data || {}))) fail(`volume ${v.name}: Secret ${s.metadata.name} has no key ${it.key}`);
      }
    }
  }
  const stateDir = flagValue(argv, '--state-dir');
  const stateVolume = mounts.get(stateDir);
  if (!stateVolume) fail(`--state-dir ${stateDir} is not a mounted volume`);
  if (values.persistence.enabled) {
    if (wl.kind !== 'StatefulSet' || !claimTemplates.has(stateVolume)) fail('persistence on, but the state directory is not a volumeClaimTemplate of a StatefulSet');
  } else if (wl.kind !== 'Deployment' || !volumes.get(stateVolume) || !volumes.get(stateVolume).emptyDir) {
    fail('persistence off, but the state directory is not an emptyDir of a Deployment');
  }
  const tokenFile = flagValue(argv, '--control-token-file');
  if (!tokenFile || !mounts.has(path.dirname(tokenFile))) fail(`--control-token-file ${tokenFile} is not in a mounted volume`);
  const metricsToken = flagValue(argv, '--metrics-token-file');
  if (Boolean(metricsToken) !== Boolean(values.metrics.tokenSecret)) fail(`--metrics-token-file ${metricsToken} but metrics.tokenSecret "${values.metrics.tokenSecret}"`);
  if (metricsToken && !mounts.has(path.dirname(metricsToken))) fail(`--metrics-token-file ${metricsToken} is not in a mounted volume`);
  const configFile = flagValue(argv, '-c');
  if (!configFile || !mounts.has(path.dirname(configFile))) fail(`-c ${configFile} is not in a mounted volume`);

  // The relay accepts the rendered config and flags: run the init container's script on the
  // rendered ConfigMap and users Secret, then `shadowrelay server --check-config` with the
  // container's args, paths moved into a temporary directory.
  const prepared = checkConfigWithBinary(r, wl, c, secrets, configMaps, fail);

  // The probes answer for real: the container's args run, probed as the kubelet would, then
  // SIGTERM drains and exits 0 (probe_live.js).
  if (prepared) checkProbesLive(prepared, c, r.values, fail);

  // Network policy: relay ports open; control and metrics only from listed peers.
  const np = byKind('NetworkPolicy')[0];
  if (values.networkPolicy.enabled) {
    if (!np) fail('NetworkPolicy missing');
    else {
      if (!labelsMatch(np.spec.podSelector.matchLabels, podLabels)) fail('NetworkPolicy does not select the pods');
      for (const rule of np.spec.ingress) {
        const ports = (rule.ports || []).map((p) => p.port);
        const opensAdmin = ports.includes(controlPort) || ports.includes(metricsPort);
        if (opensAdmin && !(rule.from && rule.from.length)) fail('NetworkPolicy opens the control API or metrics to everyone');
        if (!rule.ports || !rule.ports.length) fail('NetworkPolicy rule without ports opens every port');
      }
      const open = np.spec.ingress.filter((rr) => !rr.from).flatMap((rr) => rr.ports.map((p) => `${p.port}/${p.protocol}`));
      for (const sp of relaySvc.spec.ports) {
        if (!open.includes(`${sp.port}/${sp.protocol}`)) fail(`NetworkPolicy does not open relay port ${sp.port}/${sp.protocol}`);
      }
    }
  } else if (np) fail('NetworkPolicy rendered though disabled');

  // PDB, HPA, ServiceMonitor select the right things.
  for (const pdb of byKind('PodDisruptionBudget')) {
    if (!labelsMatch(pdb.spec.selector.matchLabels, podLabels)) fail('PDB does not select the pods');
  }
  for (const hpa of byKind('HorizontalPodAutoscaler')) {
    if (hpa.spec.scaleTargetRef.kind !== wl.kind || hpa.spec.scaleTargetRef.name !== wl.metadata.name) fail('HPA does not target the workload');
    if (wl.spec.replicas !== undefined) fail('HPA and a fixed replicas count');
  }
  for (const sm of byKind('ServiceMonitor')) {
    if (!labelsMatch(sm.spec.selector.matchLabels, controlSvc.metadata.labels)) fail('ServiceMonitor does not select the control Service');
    if (labelsMatch(sm.spec.selector.matchLabels, relaySvc.metadata.labels)) fail('ServiceMonitor also selects the relay Service');
    for (const ep of sm.spec.endpoints) {
      if (!controlSvc.spec.ports.some((p) => p.name === ep.port)) fail(`ServiceMonitor endpoint port ${ep.port} is not on the control Service`);
      if (ep.path !== '/metrics') fail(`ServiceMonitor path ${ep.path}`);
      const bearer = (ep.bearerTokenSecret || {}).name || '';
      if (bearer !== values.metrics.tokenSecret) fail(`ServiceMonitor bearerTokenSecret "${bearer}", metrics.tokenSecret "${values.metrics.tokenSecret}"`);
    }
  }
  for (const pr of byKind('PrometheusRule')) {
    const sm = byKind('ServiceMonitor')[0];
    if (!sm) { fail('PrometheusRule without a ServiceMonitor: its alerts select a job nothing scrapes'); continue; }
    // The job name Prometheus gives the targets: the Service's jobLabel label, else its name.
    const job = sm.spec.jobLabel ? controlSvc.metadata.labels[sm.spec.jobLabel] : controlSvc.metadata.name;
    checkRules(pr, job, fail);
  }

  // The Grafana dashboard: byte-identical to deploy/grafana's file, labelled for the sidecar.
  const dash = configMaps.get(`${fullname}-dashboard`);
  if (values.grafanaDashboard.enabled) {
    if (!dash) fail('dashboard ConfigMap missing');
    else {
      if (dash.metadata.labels.grafana_dashboard !== '1') fail('dashboard ConfigMap lacks label grafana_dashboard: "1"');
      let want = null;
      try { want = fs.readFileSync(args.grafana, 'utf8'); } catch (e) { fail(`cannot read ${args.grafana}: ${e.message}`); }
      if (want !== null && dash.data['shadowrelay.json'] !== want) fail('dashboard ConfigMap differs from deploy/grafana/dashboards/shadowrelay.json');
      try { JSON.parse(dash.data['shadowrelay.json']); } catch (e) { fail(`dashboard is not JSON: ${e.message}`); }
    }
  }

  // NOTES: how to reach the control API and get an access URL.
  for (const s of ['kubectl port-forward', `service/${controlSvc.metadata.name}`, 'grpcurl',
    'shadowrelay.v1.UserService/GetUser', 'access_url', 'authorization: Bearer']) {
    if (!r.notes.includes(s)) fail(`NOTES.txt does not mention ${s}`);
  }
}

function checkConfigWithBinary(r, wl, c, secrets, configMaps, fail) {
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'cfg-'));
  const pod = wl.spec.template.spec;
  const init = (pod.initContainers || []).find((x) => x.name === 'config');
  if (!init) { fail('no init container "config"'); return; }
  const env = Object.fromEntries((init.env || []).map((e) => [e.name, e.value]));
  // Volumes of the init container, materialised under dir.
  const volumes = new Map((pod.volumes || []).map((v) => [v.name, v]));
  const moved = {};
  for (const m of init.volumeMounts || []) {
    const local = path.join(dir, m.name);
    fs.mkdirSync(local, { recursive: true });
    moved[m.mountPath] = local;
    const v = volumes.get(m.name);
    if (v && v.configMap) {
      const cm = configMaps.get(v.configMap.name);
      for (const [k, val] of Object.entries((cm && cm.data) || {})) fs.writeFileSync(path.join(local, k), val);
    } else if (v && v.secret) {
      const s = secrets.get(v.secret.secretName);
      if (!s) {
        // The user's own Secret (usersSecret): stand in with one user.
        fs.writeFileSync(path.join(local, 'users.json'), JSON.stringify([{ name: 'ext', password: 'external-secret-pw' }]));
        continue;
      }
      for (const it of v.secret.items || Object.keys(s.data).map((k) => ({ key: k, path: k }))) {
        fs.writeFileSync(path.join(local, it.path), b64(s.data[it.key]));
      }
    }
  }
  const remap = (p) => {
    for (const [mp, local] of Object.entries(moved)) {
      if (p === mp || p.startsWith(`${mp}/`)) return local + p.slice(mp.length);
    }
    return p;
  };
  const scriptEnv = { PATH: '/usr/bin:/bin' };
  for (const [k, v] of Object.entries(env)) scriptEnv[k] = remap(v);
  const script = init.command[init.command.length - 1];
  const sr = run(init.command[0], init.command.slice(1, -1).concat([script]), { env: scriptEnv });
  if (sr.status !== 0) { fail(`init container script failed: ${sr.stderr}`); return; }
  const merged = scriptEnv.CONFIG_OUT;
  let config;
  try { config = JSON.parse(fs.readFileSync(merged, 'utf8')); } catch (e) { fail(`merged config is not JSON: ${e.message}`); return; }
  const users = r.values.users && r.values.users.length ? r.values.users.map((u) => u.name)
    : r.values.usersSecret ? ['ext'] : (!r.values.persistence.enabled && r.values.generateDefaultUser ? ['default'] : []);
  const got = (config.users || []).map((u) => u.name);
  if (JSON.stringify(got) !== JSON.stringify(users)) fail(`merged config users ${JSON.stringify(got)}, expected ${JSON.stringify(users)}`);

  // The main container's args with its mounted files moved.
  const mainMoved = {};
  const tokenSecret = secrets.get((volumes.get('control-token') || { secret: {} }).secret.secretName);
  const stateDir = path.join(dir, 'state');
  fs.mkdirSync(stateDir, { mode: 0o700 });
  const tokenDir = path.join(dir, 'token');
  fs.mkdirSync(tokenDir);
  fs.writeFileSync(path.join(tokenDir, 'token'), tokenSecret ? b64(tokenSecret.data.token) : 'external-token-0123456789abcdef', { mode: 0o600 });
  const tlsDir = path.join(dir, 'tls');
  for (const m of c.volumeMounts || []) {
    if (m.name === 'run') mainMoved[m.mountPath] = path.dirname(merged);
    else if (m.name === 'control-token') mainMoved[m.mountPath] = tokenDir;
    else if (m.name === 'metrics-token') mainMoved[m.mountPath] = metricsTokenDir(dir);
    else if (m.name === 'state') mainMoved[m.mountPath] = stateDir;
    else if (m.name === 'control-tls') { mainMoved[m.mountPath] = tlsDir; makeTls(tlsDir, fail); }
    else mainMoved[m.mountPath] = dir;
  }
  const argv = c.args.map((a) => {
    for (const [mp, local] of Object.entries(mainMoved)) {
      if (a === mp || a.startsWith(`${mp}/`)) return local + a.slice(mp.length);
    }
    return a;
  });
  const env2 = { PATH: '/usr/bin:/bin', HOME: dir };
  for (const k of ['RUNFILES_DIR', 'TEST_SRCDIR']) if (process.env[k]) env2[k] = process.env[k];
  const br = run(args.relay, argv.concat(['--check-config']), { env: env2 });
  if (br.status !== 0) {
    fail(`shadowrelay ${argv.join(' ')} --check-config exited ${br.status}: ${(br.stderr || '').trim()}`);
    return null;
  }
  return { argv, env: env2 };
}

// The external metrics token Secret's file, as the kubelet would mount it.
function metricsTokenDir(dir) {
  const d = path.join(dir, 'metrics-token');
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(d, 'token'), 'external-metrics-token-0123456789', { mode: 0o600 });
  return d;
}

function checkProbesLive(prepared, c, values, fail) {
  const spec = {
    relay: path.resolve(args.relay),
    argv: prepared.argv,
    env: prepared.env,
    ports: { control: values.controlApi.port, metrics: values.metrics.port, relay: values.relay.port },
    containerPorts: c.ports,
    probes: [c.readinessProbe, c.livenessProbe],
    drainSeconds: values.relay.drainTimeoutSeconds,
  };
  const file = fs.mkdtempSync(path.join(tmpRoot, 'probe-')) + '/spec.json';
  fs.writeFileSync(file, JSON.stringify(spec));
  const r = run(process.execPath, [path.join(__dirname, 'probe_live.js'), file], { timeout: 90000 });
  if (r.status !== 0) fail(`live probes: ${(r.stdout || '').trim()} ${(r.stderr || '').trim()}`);
  else console.log(`  live: ${(r.stdout || '').trim().replace(/\n/g, '; ')}`);
}

// A self-signed certificate for the TLS value set's --control-tls-* files.
function makeTls(dir, fail) {
  if (fs.existsSync(path.join(dir, 'tls.crt'))) return;
  fs.mkdirSync(dir, { recursive: true });
  const r = run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.crt'), '-days', '2', '-subj', '/CN=shadowrelay']);
  if (r.status !== 0) fail(`openssl: ${r.stderr}`);
  fs.copyFileSync(path.join(dir, 'tls.crt'), path.join(dir, 'ca.crt'));
}

// The PrometheusRule: valid rules (promtool), every alert of deploy/prometheus/alerts.yml, and
// every job="..." matcher naming the job the ServiceMonitor produces.
function checkRules(pr, jobName, fail) {
  const file = path.join(fs.mkdtempSync(path.join(tmpRoot, 'rules-')), 'rules.json');
  fs.writeFileSync(file, JSON.stringify({ groups: pr.spec.groups }));
  const r = run('promtool', ['check', 'rules', file]);
  if (r.status !== 0) fail(`promtool check rules: ${r.stdout}${r.stderr}`);
  const rendered = pr.spec.groups.flatMap((g) => g.rules);
  const wanted = [...fs.readFileSync(args.alerts, 'utf8').matchAll(/^\s*-\s*alert:\s*(\S+)/gm)].map((m) => m[1]);
  if (!wanted.length) fail(`no alerts found in ${args.alerts}`);
  for (const a of wanted) {
    if (!rendered.some((x) => x.alert === a)) fail(`PrometheusRule lacks alert ${a} of deploy/prometheus/alerts.yml`);
  }
  for (const rule of rendered) {
    if (!wanted.includes(rule.alert)) continue;
    const jobs = [...rule.expr.matchAll(/\bjob\s*=~?\s*"([^"]*)"/g)].map((m) => m[1]);
    for (const j of jobs) {
      if (j !== jobName) fail(`alert ${rule.alert} selects job="${j}", but the ServiceMonitor's targets get job="${jobName}"`);
    }
  }
}

// ---- the value sets ----

const find = (r, kind, name) => r.manifests.map((m) => m.object).find((o) => o.kind === kind && (!name || o.metadata.name === name));
const container = (r) => {
  const wl = r.manifests.map((m) => m.object).find((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
  return wl.spec.template.spec.containers[0];
};

const cases = [
  {
    name: 'default',
    files: [],
    expect(r, fail) {
      const d = find(r, 'Deployment');
      if (!d || d.spec.replicas !== 1) fail('default: a Deployment with one replica');
      if (find(r, 'StatefulSet') || find(r, 'ServiceMonitor') || find(r, 'PrometheusRule') || find(r, 'HorizontalPodAutoscaler')) fail('default renders optional objects');
      const svc = find(r, 'Service', 'sr-shadowrelay');
      if (svc.spec.type !== 'ClusterIP') fail('default relay Service is not ClusterIP');
      const token = find(r, 'Secret', 'sr-shadowrelay-control-token');
      if (!token || b64(token.data.token).length < 32) fail('control token not generated (>= 32 characters)');
      const users = find(r, 'Secret', 'sr-shadowrelay-users');
      const list = users && JSON.parse(b64(users.data['users.json']));
      if (!list || list.length !== 1 || list[0].name !== 'default' || list[0].password.length < 24) fail('generated default user missing');
      if (list && b64(users.data['generated-password']) !== list[0].password) fail('generated-password differs from the user\'s');
      if (!find(r, 'PodDisruptionBudget') || !find(r, 'NetworkPolicy') || !find(r, 'ServiceAccount')) fail('PDB, NetworkPolicy or ServiceAccount missing');
    },
  },
  {
    name: 'loadbalancer',
    files: ['loadbalancer.yaml'],
    expect(r, fail) {
      const svc = find(r, 'Service', 'sr-shadowrelay');
      if (svc.spec.type !== 'LoadBalancer' || svc.spec.externalTrafficPolicy !== 'Local') fail('LoadBalancer with externalTrafficPolicy Local expected');
      if (!svc.spec.ports.every((p) => p.nodePort === 30388)) fail('nodePort 30388 not on every relay port');
      if (JSON.stringify(svc.spec.loadBalancerSourceRanges) !== JSON.stringify(['203.0.113.0/24'])) fail('loadBalancerSourceRanges');
      const args = container(r).args;
      if (flagValue(args, '--public-host') !== 'relay.example.com') fail('--public-host not passed');
      if (!r.notes.includes('EXTERNAL-IP')) fail('NOTES lack the LoadBalancer hint');
    },
  },
  {
    name: 'persistence',
    files: ['persistence.yaml'],
    expect(r, fail) {
      const ss = find(r, 'StatefulSet');
      if (!ss || find(r, 'Deployment')) fail('persistence: a StatefulSet instead of the Deployment');
      const vct = ss && ss.spec.volumeClaimTemplates[0];
      if (!vct || vct.spec.resources.requests.storage !== '5Gi' || vct.spec.storageClassName !== 'fast-ssd') fail('volumeClaimTemplate size/storage class');
      if (ss && ss.spec.serviceName !== 'sr-shadowrelay-control') fail('StatefulSet serviceName');
      if (find(r, 'Secret', 'sr-shadowrelay-users')) fail('persistence with no static users: the server keeps its own key, no generated user');
    },
  },
  {
    name: 'servicemonitor',
    files: ['servicemonitor.yaml'],
    expect(r, fail) {
      const sm = find(r, 'ServiceMonitor');
      const pr = find(r, 'PrometheusRule');
      if (!sm || !pr) fail('ServiceMonitor and PrometheusRule expected');
      if (sm && sm.metadata.labels.release !== 'kube-prometheus-stack') fail('serviceMonitor.labels not applied');
      if (pr && !pr.spec.groups.some((g) => g.rules.some((x) => x.alert === 'ShadowrelayHighRestarts'))) fail('additionalRules not appended');
      if (sm && sm.spec.jobLabel !== 'app.kubernetes.io/part-of') fail('ServiceMonitor jobLabel');
      if (container(r).args.includes('--metrics-per-user=false') !== true) fail('metrics.perUser=false not passed');
    },
  },
  {
    name: 'replicas-static-users',
    files: ['replicas-static-users.yaml'],
    expect(r, fail) {
      const d = find(r, 'Deployment');
      if (!d || d.spec.replicas !== 2) fail('two replicas expected');
      const users = find(r, 'Secret', 'sr-shadowrelay-users');
      const list = users && JSON.parse(b64(users.data['users.json']));
      if (!list || list.map((u) => u.name).join() !== 'alice,bob') fail('static users alice, bob');
      if (list && list[1].port !== 8389) fail('bob\'s dedicated port');
      const limits = { max_devices: 3, bytes_per_second: 1048576, data_quota_bytes: 50000000000,
        data_quota_period: 'monthly', expire_time: '2027-01-31T00:00:00Z', expire_after_first_use: '30d' };
      for (const [key, want] of Object.entries(limits)) {
        if (list && list[0][key] !== want) fail(`alice's ${key}: ${JSON.stringify(list[0][key])}, expected ${JSON.stringify(want)}`);
      }
      if (list && Object.keys(limits).some((key) => key in list[1])) fail('bob got limits he has not');
      if (users && users.data['generated-password']) fail('generated password despite static users');
      const svc = find(r, 'Service', 'sr-shadowrelay');
      if (!svc.spec.ports.some((p) => p.port === 8389 && p.protocol === 'UDP')) fail('dedicated port 8389/UDP not published');
      if (!r.notes.includes('Several replicas')) fail('NOTES lack the multi-replica warning');
    },
  },
  {
    name: 'nodeport-tls-hpa',
    files: ['nodeport-tls-hpa.yaml'],
    expect(r, fail) {
      const svc = find(r, 'Service', 'sr-shadowrelay');
      if (svc.spec.type !== 'NodePort' || svc.spec.ports.some((p) => p.protocol !== 'TCP')) fail('NodePort, TCP only');
      const c = container(r);
      if (!c.readinessProbe.httpGet || c.readinessProbe.grpc) fail('TLS control API: probes must use /healthz');
      if (flagValue(c.args, '--metrics-token-file') !== '/etc/shadowrelay/metrics/token') fail('metrics.tokenSecret: --metrics-token-file');
      if (flagValue(c.args, '--control-tls-client-ca') !== '/etc/shadowrelay/tls/ca.crt') fail('client CA flag');
      const wl = find(r, 'Deployment');
      const sysctls = wl.spec.template.spec.securityContext.sysctls || [];
      if (!sysctls.some((s) => s.name === 'net.ipv4.ip_unprivileged_port_start' && s.value === '443')) fail('port 443 without ip_unprivileged_port_start=443');
      if (!find(r, 'HorizontalPodAutoscaler')) fail('HPA missing');
      if (find(r, 'Secret', 'sr-shadowrelay-users')) fail('usersSecret given: the chart must not render its own');
      const np = find(r, 'NetworkPolicy');
      const admin = np.spec.ingress.find((x) => x.from);
      if (!admin || !admin.from.some((p) => p.namespaceSelector && p.namespaceSelector.matchLabels['kubernetes.io/metadata.name'] === 'monitoring')) fail('allowedNamespaces not applied');
      if (admin && admin.from.some((p) => p.podSelector && !p.namespaceSelector)) fail('allowSameNamespace=false not applied');
    },
  },
  {
    // The README's Deploy example.
    name: 'readme-example',
    files: ['../../../deploy/examples/helm-values.yaml'],
    expect(r, fail) {
      const ss = find(r, 'StatefulSet');
      if (!ss || ss.spec.replicas !== 1) fail('one StatefulSet pod expected');
      const c = container(r);
      if (c.image !== 'registry.example.com/shadowrelay:0.1.0') fail(`image ${c.image}`);
      if (flagValue(c.args, '--public-host') !== 'relay.example.com') fail('--public-host not passed');
      const svc = find(r, 'Service', 'sr-shadowrelay');
      if (svc.spec.type !== 'LoadBalancer' || svc.spec.externalTrafficPolicy !== 'Local') fail('LoadBalancer, Local');
      if (!['TCP', 'UDP'].every((p) => svc.spec.ports.some((x) => x.port === 8388 && x.protocol === p))) fail('8388 TCP and UDP');
      if (!find(r, 'ServiceMonitor') || !find(r, 'PrometheusRule')) fail('ServiceMonitor and PrometheusRule expected');
      const dash = find(r, 'ConfigMap', 'sr-shadowrelay-dashboard');
      if (!dash || dash.metadata.namespace !== 'monitoring') fail('dashboard ConfigMap in namespace monitoring');
      // Prometheus (namespace monitoring) must get through the NetworkPolicy to /metrics.
      const np = find(r, 'NetworkPolicy');
      const metricsPort = r.values.metrics.port;
      const admits = np && np.spec.ingress.some((rule) => (rule.ports || []).some((p) => p.port === metricsPort)
        && (rule.from || []).some((p) => p.namespaceSelector && !p.podSelector
          && (p.namespaceSelector.matchLabels || {})['kubernetes.io/metadata.name'] === 'monitoring'));
      if (!admits) fail('the NetworkPolicy keeps Prometheus in namespace monitoring away from /metrics');
    },
  },
  {
    // relay.plugin and relay.pluginOpts reach the config file; the live probes run the plugin.
    name: 'plugin',
    files: ['plugin.yaml'],
    expect(r, fail) {
      const cm = find(r, 'ConfigMap', 'sr-shadowrelay-config');
      const config = cm && JSON.parse(cm.data['config.json']);
      if (!config || config.plugin !== 'obfs-server' || config.plugin_opts !== 'obfs=http') fail(`plugin keys in config.json: ${cm && cm.data['config.json']}`);
      const svc = find(r, 'Service', 'sr-shadowrelay');
      if (!['TCP', 'UDP'].every((p) => svc.spec.ports.some((x) => x.port === 8388 && x.protocol === p))) fail('8388 TCP (the plugin) and UDP (the relay) expected');
      const plain = find(JSON.parse(render([]).stdout), 'ConfigMap', 'sr-shadowrelay-config');
      if (!plain || 'plugin' in JSON.parse(plain.data['config.json'])) fail('plugin key without relay.plugin');
    },
  },
  {
    name: 'replicas-with-persistence-fails',
    files: ['replicas-persistence.yaml'],
    failsWith: 'cannot be combined with persistence.enabled=true',
  },
  {
    name: 'autoscaling-with-persistence-fails',
    files: ['autoscaling-persistence.yaml'],
    failsWith: 'cannot be combined with persistence.enabled=true',
  },
  {
    name: 'short-grace-period-fails',
    files: ['short-grace.yaml'],
    failsWith: 'terminationGracePeriodSeconds must exceed',
  },
  {
    name: 'port-clash-fails',
    files: ['port-clash.yaml'],
    failsWith: 'is also the control API or metrics port',
  },
];

// Values that the schema must refuse (a typo, a wrong type, an unknown method).
const badValues = [
  { name: 'misspelt key', values: { replicaCont: 2 } },
  { name: 'port as string', values: { relay: { port: '8388' } } },
  { name: 'unknown method', values: { users: [{ name: 'a', password: 'p', method: 'rc4-md5' }] } },
  { name: 'bad service type', values: { service: { type: 'External' } } },
  { name: 'plugin as list', values: { relay: { plugin: ['obfs-server'] } } },
];

function runCase(tc, schema) {
  const errors = [];
  const fail = (m) => errors.push(m);
  const r = render(tc.files);
  if (tc.failsWith) {
    if (r.status === 0) fail(`rendered, but must fail with "${tc.failsWith}"`);
    else if (!r.stderr.includes(tc.failsWith)) fail(`failed without "${tc.failsWith}": ${r.stderr}`);
    return errors;
  }
  if (r.status !== 0) { fail(`render failed: ${r.stderr}`); return errors; }
  const out = JSON.parse(r.stdout);
  if (!schema(out.values)) fail(`values.schema.json: ${JSON.stringify(schema.errors)}`);
  checkRendering(out, fail);
  tc.expect(out, fail);
  return errors;
}

function main() {
  const results = [];
  const t0 = Date.now();
  let schema = null;
  if (modelsLoaded) {
    const ajv = new Ajv({ allErrors: true, strict: true });
    schema = ajv.compile(JSON.parse(fs.readFileSync(path.join(args.chart, 'values.schema.json'), 'utf8')));
  }
  // The renderer itself: Helm's semantics on small charts (helmrender/main_test.go).
  {
    const start = Date.now();
    const r = run('go', ['test', './tests/deploy/helmrender'], { timeout: 180000 });
    const errors = r.status === 0 ? [] : [`go test ./tests/deploy/helmrender:\n${r.stdout}${r.stderr}`];
    results.push({ name: 'helmrender behaves like helm', errors, ms: Date.now() - start });
  }
  // The chart's copies (Helm reads only files inside the chart) and their originals.
  for (const [name, copy, original] of [
    ['dashboard copy identical', 'dashboards/shadowrelay.json', args.grafana],
    ['alerts copy identical', 'alerts/shadowrelay.yml', args.alerts],
  ]) {
    const start = Date.now();
    const errors = [];
    try {
      const a = fs.readFileSync(path.join(args.chart, copy));
      const b = fs.readFileSync(original);
      if (!a.equals(b)) errors.push(`deploy/helm/shadowrelay/${copy} differs from ${original}: copy it`);
    } catch (e) {
      errors.push(e.message);
    }
    results.push({ name, errors, ms: Date.now() - start });
  }
  {
    const start = Date.now();
    const errors = [];
    if (!schema) errors.push('ajv not installed');
    else {
      const defaults = JSON.parse(render([]).stdout || '{"values":{}}').values;
      for (const bad of badValues) {
        const merged = JSON.parse(JSON.stringify(defaults));
        for (const [k, v] of Object.entries(bad.values)) {
          merged[k] = (v && typeof v === 'object' && !Array.isArray(v)) ? { ...merged[k], ...v } : v;
        }
        if (schema(merged)) errors.push(`values.schema.json accepts ${bad.name}`);
      }
    }
    results.push({ name: 'schema rejects bad values', errors, ms: Date.now() - start });
  }
  {
    const start = Date.now();
    let errors;
    try { errors = checkUpgradeKeepsSecrets(); } catch (e) { errors = [`exception: ${e.stack}`]; }
    results.push({ name: 'upgrade keeps generated secrets', errors, ms: Date.now() - start });
  }
  for (const tc of cases) {
    const start = Date.now();
    let errors;
    if (!modelsLoaded) errors = ['npm packages not installed: run bazel/install_deps.sh test'];
    else {
      try { errors = runCase(tc, schema); } catch (e) { errors = [`exception: ${e.stack}`]; }
    }
    results.push({ name: tc.name, errors, ms: Date.now() - start });
  }
  let failed = 0;
  for (const res of results) {
    if (res.errors.length) {
      failed++;
      console.log(`FAIL ${res.name}`);
      for (const e of res.errors) console.log(`  - ${e}`);
    } else {
      console.log(`ok   ${res.name} (${res.ms} ms)`);
    }
  }
  writeJunit(results, Date.now() - t0);
  console.log(`${results.length - failed} passed, ${failed} failed`);
  fs.rmSync(tmpRoot, { recursive: true, force: true });
  process.exitCode = failed ? 1 : 0;
}

function xmlEscape(s) {
  return String(s).replace(/[<>&"]/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' }[ch]));
}

function writeJunit(results, ms) {
  const file = process.env.XML_OUTPUT_FILE;
  if (!file) return;
  const failures = results.filter((x) => x.errors.length).length;
  const lines = [`<?xml version="1.0" encoding="UTF-8"?>`,
    `<testsuites><testsuite name="chart_test" tests="${results.length}" failures="${failures}" errors="0" time="${ms / 1000}">`];
  for (const res of results) {
    lines.push(`<testcase name="${xmlEscape(res.name)}" classname="chart_test" time="${res.ms / 1000}">`);
    if (res.errors.length) lines.push(`<failure message="${xmlEscape(res.errors[0])}">${xmlEscape(res.errors.join('\n'))}</failure>`);
    lines.push('</testcase>');
  }
  lines.push('</testsuite></testsuites>');
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
}

main();
