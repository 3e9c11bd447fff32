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
//   - with an etcd store (store.etcd.endpoints or etcd.enabled): the --etcd-* flags and their
//     Secrets, the etcd StatefulSet, Services, PDB and NetworkPolicy; a real etcd (Debian's, the
//     image's version) runs while the binary is checked: the rendered members themselves, ports
//     moved to loopback, which must form one cluster, or one TLS + auth etcd standing in for the
//     external one;
//   - value sets that must not render (replicas > 1 with persistence and no etcd, both etcd
//     forms, ...) fail with their message.
// Writes one JUnit <testcase> per value set to $XML_OUTPUT_FILE.
//
// usage: node chart_test.js --render BIN --chart DIR --values DIR --grafana FILE --alerts FILE
//          --relay BIN
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn, spawnSync } = require('child_process');

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

// Non-root, read-only, no privileges, no service-account token, resources set: every container.
function checkPodSecurity(pod, fail) {
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
}

// Every mount has a volume (or claim template); every ConfigMap/Secret volume is rendered or is
// one the values name (external); the keys a volume picks exist in a rendered Secret.
function checkPodVolumes(wl, pod, secrets, configMaps, external, fail) {
  const volumes = new Map((pod.spec.volumes || []).map((v) => [v.name, v]));
  const claimTemplates = new Set(((wl.spec.volumeClaimTemplates) || []).map((t) => t.metadata.name));
  for (const x of [...(pod.spec.initContainers || []), ...pod.spec.containers]) {
    for (const m of x.volumeMounts || []) {
      if (!volumes.has(m.name) && !claimTemplates.has(m.name)) fail(`${x.name}: mount ${m.name} has no volume`);
    }
  }
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
}

// Each Service port targets a container port (by name or number) of its protocol and number.
function checkServicePorts(s, cports, fail) {
  const cportByName = new Map(cports.map((p) => [p.name, p]));
  for (const sp of s.spec.ports) {
    const target = typeof sp.targetPort === 'string' ? cportByName.get(sp.targetPort)
      : cports.find((p) => p.containerPort === (sp.targetPort || sp.port) && p.protocol === sp.protocol);
    if (!target) { fail(`Service ${s.metadata.name} port ${sp.name}: target ${sp.targetPort} is no container port`); continue; }
    if ((target.protocol || 'TCP') !== (sp.protocol || 'TCP')) fail(`Service ${s.metadata.name} port ${sp.name}: protocol ${sp.protocol} != container's ${target.protocol}`);
    if (sp.port !== target.containerPort) fail(`Service ${s.metadata.name} port ${sp.name}: ${sp.port} != container port ${target.containerPort} (ss:// URLs carry the container's port)`);
  }
}

function checkRendering(r, fail, etcdLive) {
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

  // The relay's workload, and etcd's StatefulSet with etcd.enabled (checkEtcdCluster).
  const workloads = objs.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
  const etcdSts = values.etcd.enabled ? workloads.find((o) => o.metadata.name === `${fullname}-etcd`) : null;
  if (values.etcd.enabled && !etcdSts) fail('etcd.enabled but no StatefulSet sr-shadowrelay-etcd');
  const relayWorkloads = workloads.filter((o) => o !== etcdSts);
  if (relayWorkloads.length !== 1) { fail(`expected one relay workload, got ${relayWorkloads.length}`); return; }
  const wl = relayWorkloads[0];
  if (wl.metadata.name !== fullname) fail(`relay workload named ${wl.metadata.name}`);
  const pod = wl.spec.template;
  const podLabels = pod.metadata.labels;
  if (!labelsMatch(wl.spec.selector.matchLabels, podLabels)) fail('workload selector does not match its pod labels');
  const etcdPod = etcdSts ? etcdSts.spec.template : null;
  if (etcdPod && (labelsMatch(wl.spec.selector.matchLabels, etcdPod.metadata.labels)
    || labelsMatch(etcdSts.spec.selector.matchLabels, podLabels))) fail('the relay and etcd selectors overlap');
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
  // etcd's Services select the etcd members; every other one the relay pods.
  const services = byKind('Service');
  const relaySvc = services.find((s) => s.metadata.name === fullname);
  const controlSvc = services.find((s) => s.metadata.name === `${fullname}-control`);
  if (!relaySvc || !controlSvc) { fail('relay or control Service missing'); return; }
  const etcdServiceNames = [`${fullname}-etcd`, `${fullname}-etcd-headless`];
  for (const s of services) {
    const forEtcd = etcdServiceNames.includes(s.metadata.name);
    if (forEtcd && !etcdPod) { fail(`Service ${s.metadata.name} without etcd.enabled`); continue; }
    const target = forEtcd ? etcdPod : pod;
    const other = forEtcd ? pod : etcdPod;
    if (!labelsMatch(s.spec.selector, target.metadata.labels)) fail(`Service ${s.metadata.name} does not select the ${forEtcd ? 'etcd members' : 'relay pods'}`);
    if (other && labelsMatch(s.spec.selector, other.metadata.labels)) fail(`Service ${s.metadata.name} also selects the ${forEtcd ? 'relay pods' : 'etcd members'}`);
    checkServicePorts(s, target.spec.containers[0].ports || [], fail);
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

  // Security context of every container, volumes of every mount, for the relay and etcd pods.
  const secrets = new Map(byKind('Secret').map((s) => [s.metadata.name, s]));
  const configMaps = new Map(byKind('ConfigMap').map((s) => [s.metadata.name, s]));
  const external = [values.usersSecret, values.controlApi.existingSecret, values.controlApi.tls.secretName,
    values.metrics.tokenSecret, values.store.etcd.tls.secretName, values.store.etcd.auth.passwordSecret,
    values.etcd.tls.secretName].filter(Boolean);
  const claimTemplates = new Set(((wl.spec.volumeClaimTemplates) || []).map((t) => t.metadata.name));
  const volumes = new Map((pod.spec.volumes || []).map((v) => [v.name, v]));
  for (const [w, p] of [[wl, pod], [etcdSts, etcdPod]]) {
    if (!w) continue;
    checkPodSecurity(p, fail);
    checkPodVolumes(w, p, secrets, configMaps, external, fail);
  }
  const mounts = new Map(c.volumeMounts.map((m) => [m.mountPath, m.name]));
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
  const prepared = checkConfigWithBinary(r, wl, c, secrets, configMaps, etcdLive, fail);

  // The probes answer for real: the container's args run, probed as the kubelet would, then
  // SIGTERM drains and exits 0 (probe_live.js).
  if (prepared) checkProbesLive(prepared, c, r.values, fail);

  // The etcd store: flags, mounts, and with etcd.enabled the cluster's objects.
  checkEtcdStore(r, wl, c, fail);

  // Network policy: relay ports open; control and metrics only from listed peers.
  const np = byKind('NetworkPolicy').find((o) => o.metadata.name === fullname);
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
  } else if (byKind('NetworkPolicy').length) fail('NetworkPolicy rendered though disabled');

  // PDB, HPA, ServiceMonitor select the right things.
  for (const pdb of byKind('PodDisruptionBudget')) {
    const forEtcd = pdb.metadata.name === `${fullname}-etcd`;
    const target = forEtcd ? etcdPod : pod;
    const other = forEtcd ? pod : etcdPod;
    if (!target || !labelsMatch(pdb.spec.selector.matchLabels, target.metadata.labels)) fail(`PDB ${pdb.metadata.name} does not select the ${forEtcd ? 'etcd members' : 'relay pods'}`);
    if (other && labelsMatch(pdb.spec.selector.matchLabels, other.metadata.labels)) fail(`PDB ${pdb.metadata.name} selects both the relay pods and the etcd members`);
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

// ---- the etcd store (store.etcd.endpoints, or etcd.enabled) ----

const etcdStoreOn = (values) => (values.store.etcd.endpoints || []).length > 0 || values.etcd.enabled;

// The Secret volume behind a file path of a container: {volume, mount} or null.
function mountedFile(pod, c, file) {
  const m = (c.volumeMounts || []).find((x) => file.startsWith(`${x.mountPath}/`));
  if (!m) return null;
  return { mount: m, volume: (pod.spec.volumes || []).find((v) => v.name === m.name) };
}

// A file flag names the key `key` of Secret `secret`, mounted read-only, not readable by others.
function checkSecretFile(what, pod, c, file, secret, key, fail) {
  const mf = file ? mountedFile(pod, c, file) : null;
  if (!mf || !mf.volume || !mf.volume.secret) { fail(`${what} ${file}: not in a mounted Secret`); return; }
  if (mf.volume.secret.secretName !== secret) fail(`${what} ${file}: Secret ${mf.volume.secret.secretName}, expected ${secret}`);
  if (mf.mount.readOnly !== true) fail(`${what}: Secret ${secret} mounted writable`);
  const rel = file.slice(mf.mount.mountPath.length + 1);
  const item = (mf.volume.secret.items || []).find((it) => it.path === rel);
  if (item ? item.key !== key : rel !== key) fail(`${what} ${file}: not the Secret's key ${key}`);
  if ((mf.volume.secret.defaultMode & 0o007) !== 0) fail(`${what}: Secret ${secret} readable by others (defaultMode ${mf.volume.secret.defaultMode})`);
}

// The relay's --etcd-* flags and their files, and the etcd cluster's objects with etcd.enabled.
function checkEtcdStore(r, wl, c, fail) {
  const values = r.values;
  const se = values.store.etcd;
  const argv = c.args;
  const pod = wl.spec.template;
  const fullname = `${RELEASE}-shadowrelay`;
  if (!etcdStoreOn(values)) {
    if (argv.some((a) => a.startsWith('--etcd-'))) fail('--etcd-* flags without an etcd store');
    if (r.manifests.some((m) => m.object.metadata.name.startsWith(`${fullname}-etcd`))) fail('etcd objects without etcd.enabled');
    return;
  }
  const scheme = values.etcd.tls.secretName ? 'https' : 'http';
  const want = values.etcd.enabled
    ? `${scheme}://${fullname}-etcd.${NAMESPACE}.svc.${values.etcd.clusterDomain}:2379` : se.endpoints.join(',');
  if (flagValue(argv, '--etcd-endpoints') !== want) fail(`--etcd-endpoints ${flagValue(argv, '--etcd-endpoints')}, expected ${want}`);
  if (flagValue(argv, '--etcd-prefix') !== se.prefix) fail(`--etcd-prefix ${flagValue(argv, '--etcd-prefix')}, expected ${se.prefix}`);
  const tlsSecret = values.etcd.enabled ? values.etcd.tls.secretName : se.tls.secretName;
  for (const [flag, key] of [['--etcd-ca', 'ca.crt'], ['--etcd-cert', 'tls.crt'], ['--etcd-key', 'tls.key']]) {
    const file = flagValue(argv, flag);
    if (!tlsSecret) {
      if (file !== undefined) fail(`${flag} without a TLS Secret`);
    } else {
      checkSecretFile(flag, pod, c, file, tlsSecret, key, fail);
    }
  }
  if (flagValue(argv, '--etcd-user') !== (se.auth.user || undefined)) fail(`--etcd-user ${flagValue(argv, '--etcd-user')}, store.etcd.auth.user "${se.auth.user}"`);
  const passwordFile = flagValue(argv, '--etcd-password-file');
  if (se.auth.user) checkSecretFile('--etcd-password-file', pod, c, passwordFile, se.auth.passwordSecret, 'password', fail);
  else if (passwordFile !== undefined) fail('--etcd-password-file without store.etcd.auth.user');
  for (const [flag, v] of [['--etcd-sync-interval', se.syncIntervalSeconds], ['--etcd-lease-ttl', se.leaseTtlSeconds]]) {
    const got = flagValue(argv, flag);
    if (v === null || v === undefined ? got !== undefined : got !== String(v)) fail(`${flag} ${got}, value ${v}`);
  }
  if (values.etcd.enabled) checkEtcdCluster(r, fail);
}

// The names of etcd.enabled's objects and members, as the chart must build them.
function etcdNames(values) {
  const name = `${RELEASE}-shadowrelay-etcd`;
  const headless = `${name}-headless`;
  const domain = `${headless}.${NAMESPACE}.svc.${values.etcd.clusterDomain}`;
  const scheme = values.etcd.tls.secretName ? 'https' : 'http';
  const members = [...Array(values.etcd.replicas).keys()].map((i) => `${name}-${i}`);
  return { name, headless, domain, scheme, members };
}

// --flag=value arguments as a Map (a bare --flag maps to true); a repeated flag is an error.
function etcdFlags(args, fail) {
  const flags = new Map();
  for (const a of args) {
    const m = /^(--[a-z0-9-]+)(?:=(.*))?$/.exec(a);
    if (!m) { fail(`etcd argument ${a} is not --flag or --flag=value`); continue; }
    if (flags.has(m[1])) fail(`etcd flag ${m[1]} given twice`);
    flags.set(m[1], m[2] === undefined ? true : m[2]);
  }
  return flags;
}

function checkEtcdCluster(r, fail) {
  const values = r.values;
  const n = etcdNames(values);
  const sts = find(r, 'StatefulSet', n.name);
  if (!sts) { fail(`StatefulSet ${n.name} missing`); return; }
  if (sts.spec.replicas !== values.etcd.replicas) fail(`etcd StatefulSet replicas ${sts.spec.replicas}, etcd.replicas ${values.etcd.replicas}`);
  if (sts.spec.serviceName !== n.headless) fail(`etcd StatefulSet serviceName ${sts.spec.serviceName}`);
  if (sts.spec.podManagementPolicy !== 'Parallel') fail('etcd members must start in parallel (no member is ready before a quorum)');
  const c = sts.spec.template.spec.containers.find((x) => x.name === 'etcd');
  if (!c) { fail('no container "etcd"'); return; }
  if (c.image !== `${values.etcd.image.repository}:${values.etcd.image.tag}`) fail(`etcd image ${c.image}`);
  if (path.basename((c.command || [])[0] || '') !== 'etcd') fail(`etcd command ${c.command}`);
  const env = new Map((c.env || []).map((e) => [e.name, e]));
  const podName = env.get('POD_NAME');
  if (!podName || ((podName.valueFrom || {}).fieldRef || {}).fieldPath !== 'metadata.name') fail('POD_NAME is not the pod\'s name');
  const flags = etcdFlags(c.args || [], fail);
  const expect = {
    '--name': '$(POD_NAME)',
    '--initial-cluster': n.members.map((m) => `${m}=${n.scheme}://${m}.${n.domain}:2380`).join(','),
    '--initial-advertise-peer-urls': `${n.scheme}://$(POD_NAME).${n.domain}:2380`,
    '--advertise-client-urls': `${n.scheme}://$(POD_NAME).${n.domain}:2379`,
    '--listen-peer-urls': `${n.scheme}://0.0.0.0:2380`,
    '--listen-client-urls': `${n.scheme}://0.0.0.0:2379`,
    '--initial-cluster-state': 'new',
    '--auto-compaction-mode': 'periodic',
    '--auto-compaction-retention': values.etcd.autoCompactionRetention,
  };
  for (const [flag, v] of Object.entries(expect)) {
    if (flags.get(flag) !== v) fail(`etcd ${flag}=${flags.get(flag)}, expected ${v}`);
  }
  const ports = new Map((c.ports || []).map((p) => [p.name, p.containerPort]));
  if (ports.get('client') !== 2379 || ports.get('peer') !== 2380) fail('etcd container ports client 2379, peer 2380');
  if (flags.get('--listen-metrics-urls') !== `http://0.0.0.0:${ports.get('metrics')}`) fail(`--listen-metrics-urls ${flags.get('--listen-metrics-urls')} is not the metrics port`);
  const rp = c.readinessProbe || {};
  if (!rp.httpGet || rp.httpGet.path !== '/health' || rp.httpGet.port !== 'metrics') fail('etcd readiness: GET /health on the metrics port');
  if (!c.livenessProbe || (c.livenessProbe.httpGet && c.livenessProbe.httpGet.path === '/health')) fail('etcd liveness must not be /health (it fails on every member while the quorum is lost)');
  // The data directory is on the claim template; TLS files come from etcd.tls.secretName.
  const pod = sts.spec.template;
  const dataMount = (c.volumeMounts || []).find((m) => String(flags.get('--data-dir')).startsWith(`${m.mountPath}/`));
  const vct = (sts.spec.volumeClaimTemplates || []).find((t) => dataMount && t.metadata.name === dataMount.name);
  if (!vct) fail(`--data-dir ${flags.get('--data-dir')} is not on a volumeClaimTemplate`);
  else if (vct.spec.resources.requests.storage !== values.etcd.persistence.size) fail(`etcd claim size ${vct.spec.resources.requests.storage}`);
  const tls = values.etcd.tls.secretName;
  for (const [flag, key] of [['--trusted-ca-file', 'ca.crt'], ['--cert-file', 'tls.crt'], ['--key-file', 'tls.key'],
    ['--peer-trusted-ca-file', 'ca.crt'], ['--peer-cert-file', 'tls.crt'], ['--peer-key-file', 'tls.key']]) {
    if (tls) checkSecretFile(`etcd ${flag}`, pod, c, flags.get(flag), tls, key, fail);
    else if (flags.has(flag)) fail(`etcd ${flag} without etcd.tls.secretName`);
  }
  for (const flag of ['--client-cert-auth', '--peer-client-cert-auth']) {
    if (Boolean(tls) !== (flags.get(flag) === true)) fail(`etcd ${flag} ${flags.get(flag)} with etcd.tls.secretName "${tls}"`);
  }
  // Services: the headless one publishes members before they are ready (they need each other).
  const headless = find(r, 'Service', n.headless);
  if (!headless || headless.spec.clusterIP !== 'None' || headless.spec.publishNotReadyAddresses !== true) fail(`Service ${n.headless}: headless, publishing not-ready members`);
  if (headless && JSON.stringify(headless.spec.ports.map((p) => p.port).sort()) !== '[2379,2380]') fail(`Service ${n.headless} ports`);
  const client = find(r, 'Service', n.name);
  if (!client || client.spec.type !== 'ClusterIP' || JSON.stringify(client.spec.ports.map((p) => p.port)) !== '[2379]') fail(`Service ${n.name}: ClusterIP, port 2379`);
  const pdb = find(r, 'PodDisruptionBudget', n.name);
  if (!pdb || pdb.spec.maxUnavailable !== 1 || pdb.spec.minAvailable !== undefined) fail(`PodDisruptionBudget ${n.name} with maxUnavailable 1 missing`);
  // NetworkPolicy: clients only from the relay pods (and members), peers only from members.
  const np = find(r, 'NetworkPolicy', n.name);
  if (values.networkPolicy.enabled) {
    if (!np || !labelsMatch(np.spec.podSelector.matchLabels, pod.metadata.labels)) { fail(`NetworkPolicy ${n.name} missing or not selecting the members`); return; }
    const relayPod = find(r, 'Deployment', `${RELEASE}-shadowrelay`) || find(r, 'StatefulSet', `${RELEASE}-shadowrelay`);
    const fromOf = (port) => np.spec.ingress.filter((rule) => (rule.ports || []).some((p) => p.port === port));
    for (const [port, who] of [[2379, [relayPod.spec.template, pod]], [2380, [pod]]]) {
      const rules = fromOf(port);
      if (!rules.length) fail(`NetworkPolicy ${n.name} does not open ${port}`);
      for (const rule of rules) {
        if (!rule.from || !rule.from.length) { fail(`NetworkPolicy ${n.name} opens ${port} to everyone`); continue; }
        for (const peer of rule.from) {
          if (!peer.podSelector || peer.namespaceSelector || !who.some((p) => labelsMatch(peer.podSelector.matchLabels, p.metadata.labels))) fail(`NetworkPolicy ${n.name}: port ${port} admits ${JSON.stringify(peer)}`);
        }
      }
      for (const p of who) {
        if (!rules.some((rule) => rule.from.some((peer) => peer.podSelector && labelsMatch(peer.podSelector.matchLabels, p.metadata.labels)))) fail(`NetworkPolicy ${n.name}: port ${port} shuts out ${p.metadata.labels['app.kubernetes.io/name']}`);
      }
    }
  } else if (np) fail(`NetworkPolicy ${n.name} rendered though networkPolicy.enabled=false`);
}

// ---- a real etcd for the relay to use: the rendered StatefulSet's members, or an external one ----

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function httpStatus(port, urlPath) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ code: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', () => resolve({ code: 0, body: '' }));
  });
}

function tcpConnects(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port, timeout: 2000 }, () => { sock.destroy(); resolve(true); });
    sock.on('error', () => resolve(false));
    sock.on('timeout', () => { sock.destroy(); resolve(false); });
  });
}

// A CA and one certificate for server and client use, valid for 127.0.0.1 (where the test runs
// the members) and the cluster names the chart documents for etcd.tls.secretName.
function makeEtcdPki(dir, dnsNames, fail) {
  fs.mkdirSync(dir, { recursive: true });
  const f = (x) => path.join(dir, x);
  const steps = [
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ca.key'),
      '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=chart-test-etcd-ca'],
    ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('tls.key'),
      '-out', f('tls.csr'), '-subj', '/CN=chart-test-etcd'],
    ['x509', '-req', '-in', f('tls.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f('tls.crt'), '-days', '2', '-extfile', f('ext.cnf')],
  ];
  fs.writeFileSync(f('ext.cnf'), `subjectAltName=IP:127.0.0.1,${dnsNames.map((d) => `DNS:${d}`).join(',')}\n`
    + 'extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n');
  for (const step of steps) {
    const r = run('openssl', step);
    if (r.status !== 0) { fail(`openssl ${step[0]}: ${r.stderr}`); return false; }
  }
  for (const x of ['ca.key', 'tls.key']) fs.chmodSync(f(x), 0o600);
  return true;
}

// Runs etcd processes (Debian's etcd, the image's version) with output to files; stop() kills
// them all and waits for them to exit.
function etcdProcesses(dir) {
  const procs = [];
  return {
    procs,
    start(name, argv) {
      const log = fs.openSync(path.join(dir, `${name}.log`), 'w');
      const child = spawn('etcd', argv, { stdio: ['ignore', log, log], env: { PATH: process.env.PATH } });
      fs.closeSync(log);
      const p = { name, child, exited: null, log: path.join(dir, `${name}.log`) };
      p.exit = new Promise((resolve) => child.on('exit', (code, signal) => { p.exited = { code, signal }; resolve(); }));
      procs.push(p);
      return p;
    },
    tail(p) {
      try { return fs.readFileSync(p.log, 'utf8').trim().split('\n').slice(-5).join('\n'); } catch (e) { return ''; }
    },
    async stop() {
      for (const p of procs) if (p.exited === null) p.child.kill('SIGKILL');
      await Promise.all(procs.map((p) => p.exit));
    },
  };
}

// Waits (bounded) until GET urlPath on port answers 200 from every member.
async function waitHealthy(members, ps, fail) {
  const deadline = Date.now() + 20000;
  for (const m of members) {
    let last = null;
    while (Date.now() < deadline && m.proc.exited === null) {
      last = await httpStatus(m.healthPort, m.healthPath);
      if (last.code === 200) break;
      await sleep(100);
    }
    if (!last || last.code !== 200) {
      fail(`etcd ${m.proc.name}: GET ${m.healthPath} ${last ? `${last.code} ${last.body}` : 'never asked'}`
        + `${m.proc.exited ? ` (exited ${JSON.stringify(m.proc.exited)})` : ''}\n${ps.tail(m.proc)}`);
      return false;
    }
  }
  return true;
}

function etcdctl(tls, endpoints, argv) {
  const t = tls ? [`--cacert=${tls}/ca.crt`, `--cert=${tls}/tls.crt`, `--key=${tls}/tls.key`] : [];
  return run('etcdctl', [`--endpoints=${endpoints}`, '--dial-timeout=3s', '--command-timeout=5s', ...t, ...argv],
    { env: { PATH: process.env.PATH, ETCDCTL_API: '3' } });
}

// etcd.enabled: every member of the rendered StatefulSet as the kubelet would run it ($(VAR) from
// the pod's env, the mounts' files), with each member's ports moved to free loopback ports and
// the members' DNS names to 127.0.0.1. The members must form one cluster with a leader and pass
// their rendered probes. The relay then gets the client Service's URL mapped to a member.
async function startEtcdCluster(r, dir, fail) {
  const values = r.values;
  const n = etcdNames(values);
  const sts = find(r, 'StatefulSet', n.name);
  const c = sts && sts.spec.template.spec.containers.find((x) => x.name === 'etcd');
  if (!c) { fail('no etcd container to run'); return null; }
  const pkiDir = path.join(dir, 'pki');
  if (n.scheme === 'https' && !makeEtcdPki(pkiDir, [`*.${n.domain}`, `${n.name}.${NAMESPACE}.svc.${values.etcd.clusterDomain}`], fail)) return null;
  const containerPorts = new Map((c.ports || []).map((p) => [p.name, p.containerPort]));
  const ports = [];
  for (let i = 0; i < sts.spec.replicas; i++) {
    const m = new Map();
    for (const p of containerPorts.values()) m.set(p, await freePort());
    ports.push(m);
  }
  // scheme://host:port -> scheme://127.0.0.1:moved, for member `self`'s own listeners (0.0.0.0)
  // and the members' DNS names.
  const mapUrl = (url, self) => {
    const m = /^(https?):\/\/([^:/]+):(\d+)$/.exec(url);
    if (!m) throw new Error(`etcd URL ${url} is not scheme://host:port`);
    let member = m[2] === '0.0.0.0' ? self : n.members.findIndex((x) => m[2] === `${x}.${n.domain}`);
    if (m[2] === `${n.name}.${NAMESPACE}.svc.${values.etcd.clusterDomain}`) member = 0;  // the client Service
    if (member === undefined || member < 0 || !ports[member].has(Number(m[3]))) throw new Error(`etcd URL ${url}: no member or port`);
    return `${m[1]}://127.0.0.1:${ports[member].get(Number(m[3]))}`;
  };
  const ps = etcdProcesses(dir);
  const members = [];
  try {
    for (let i = 0; i < n.members.length; i++) {
      const podEnv = {};
      for (const e of c.env || []) {
        const field = ((e.valueFrom || {}).fieldRef || {}).fieldPath;
        podEnv[e.name] = field === 'metadata.name' ? n.members[i] : field === 'metadata.namespace' ? NAMESPACE : e.value;
      }
      const moved = new Map();
      for (const vm of c.volumeMounts || []) {
        if (vm.name === 'tls') moved.set(vm.mountPath, pkiDir);
        else { const d = path.join(dir, `${n.members[i]}-${vm.name}`); fs.mkdirSync(d, { recursive: true }); moved.set(vm.mountPath, d); }
      }
      const argv = (c.args || []).map((a) => {
        let v = a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name) => {
          if (!(name in podEnv)) throw new Error(`etcd argument ${a}: $(${name}) is not in the container's env`);
          return podEnv[name];
        });
        const eq = v.indexOf('=');
        if (eq < 0) return v;
        const [flag, value] = [v.slice(0, eq), v.slice(eq + 1)];
        if (value.includes('://')) {
          v = `${flag}=${value.split(',').map((item) => {
            const named = /^([^=]+)=(.*)$/.exec(item);
            return named ? `${named[1]}=${mapUrl(named[2], i)}` : mapUrl(item, i);
          }).join(',')}`;
        } else {
          for (const [mp, local] of moved) if (value.startsWith(`${mp}/`)) v = `${flag}=${local}${value.slice(mp.length)}`;
        }
        return v;
      });
      const proc = ps.start(n.members[i], argv);
      const hp = c.readinessProbe.httpGet;
      members.push({ proc, healthPort: ports[i].get(containerPorts.get(hp.port) || hp.port), healthPath: hp.path });
    }
    if (!await waitHealthy(members, ps, fail)) { await ps.stop(); return null; }
    // Liveness as the kubelet asks it (a TCP connect on the metrics port).
    const live = c.livenessProbe.tcpSocket;
    for (let i = 0; i < members.length; i++) {
      if (live && !await tcpConnects(ports[i].get(containerPorts.get(live.port) || live.port))) fail(`etcd ${n.members[i]}: liveness tcpSocket refused`);
    }
    // One cluster: every member lists the same members, named as the pods, and one leader.
    const tls = n.scheme === 'https' ? pkiDir : null;
    const all = n.members.map((x) => mapUrl(`${n.scheme}://${x}.${n.domain}:2379`)).join(',');
    const st = etcdctl(tls, all, ['endpoint', 'status', '-w', 'json']);
    const ml = etcdctl(tls, all, ['member', 'list', '-w', 'json']);
    if (st.status !== 0 || ml.status !== 0) fail(`etcdctl: ${st.stderr}${ml.stderr}`);
    else {
      const status = JSON.parse(st.stdout);
      const leaders = new Set(status.map((x) => x.Status.leader));
      if (status.length !== n.members.length || leaders.size !== 1) fail(`etcd endpoint status: ${st.stdout}`);
      const names = JSON.parse(ml.stdout).members.map((x) => x.name).sort();
      if (JSON.stringify(names) !== JSON.stringify([...n.members].sort())) fail(`etcd members ${names}, expected ${n.members}`);
    }
    console.log(`  etcd: ${n.members.length} members from the StatefulSet, one leader`);
    return { mapUrl: (u) => mapUrl(u), tlsDir: tls, password: null, stop: () => ps.stop() };
  } catch (e) {
    fail(`etcd members: ${e.message}`);
    await ps.stop();
    return null;
  }
}

// store.etcd.endpoints: one etcd stands in for the external cluster (every endpoint mapped to it),
// with the client TLS (--client-cert-auth) and the user of the values: authentication on, and
// the user allowed only the prefix.
async function startExternalEtcd(r, dir, fail) {
  const se = r.values.store.etcd;
  const https = se.endpoints.some((u) => u.startsWith('https://'));
  if (https && !se.tls.secretName) { fail('test set: https endpoints need store.etcd.tls.secretName (the test CA)'); return null; }
  const pkiDir = path.join(dir, 'pki');
  if (https && !makeEtcdPki(pkiDir, ['localhost'], fail)) return null;
  const scheme = https ? 'https' : 'http';
  const [client, peer, metrics] = [await freePort(), await freePort(), await freePort()];
  const url = `${scheme}://127.0.0.1:${client}`;
  const tlsFlags = https ? [`--cert-file=${pkiDir}/tls.crt`, `--key-file=${pkiDir}/tls.key`,
    `--trusted-ca-file=${pkiDir}/ca.crt`, '--client-cert-auth'] : [];
  const ps = etcdProcesses(dir);
  const proc = ps.start('external', [`--name=external`, `--data-dir=${dir}/external.etcd`,
    `--listen-client-urls=${url}`, `--advertise-client-urls=${url}`,
    `--listen-peer-urls=http://127.0.0.1:${peer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-cluster=external=http://127.0.0.1:${peer}`, `--listen-metrics-urls=http://127.0.0.1:${metrics}`,
    '--logger=zap', ...tlsFlags]);
  if (!await waitHealthy([{ proc, healthPort: metrics, healthPath: '/health' }], ps, fail)) { await ps.stop(); return null; }
  const tls = https ? pkiDir : null;
  let password = null;
  if (se.auth.user) {
    password = `pw-${crypto.randomBytes(12).toString('hex')}`;
    const steps = [['user', 'add', 'root:root-test-pw'], ['user', 'add', `${se.auth.user}:${password}`],
      ['role', 'add', 'shadowrelay'], ['role', 'grant-permission', 'shadowrelay', '--prefix=true', 'readwrite', se.prefix],
      ['user', 'grant-role', se.auth.user, 'shadowrelay'], ['auth', 'enable']];
    for (const step of steps) {
      const x = etcdctl(tls, url, step);
      if (x.status !== 0) { fail(`etcdctl ${step.join(' ')}: ${x.stderr}`); await ps.stop(); return null; }
    }
    // Authentication is on: the user may write under the prefix only.
    const inside = etcdctl(tls, url, [`--user=${se.auth.user}:${password}`, 'put', `${se.prefix}chart-test`, '1']);
    const outside = etcdctl(tls, url, [`--user=${se.auth.user}:${password}`, 'put', '/elsewhere', '1']);
    if (inside.status !== 0 || outside.status === 0) fail(`etcd auth: put under ${se.prefix} ${inside.status}, outside ${outside.status}`);
  }
  console.log(`  etcd: one member standing in for ${se.endpoints.join(',')}${se.auth.user ? `, user ${se.auth.user}` : ''}`);
  const mapUrl = (u) => {
    if (!se.endpoints.includes(u)) throw new Error(`${u} is not one of store.etcd.endpoints`);
    return url;
  };
  return { mapUrl, tlsDir: tls, password, stop: () => ps.stop() };
}

async function startEtcd(r, fail) {
  if (!etcdStoreOn(r.values)) return null;
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'etcd-'));
  return r.values.etcd.enabled ? startEtcdCluster(r, dir, fail) : startExternalEtcd(r, dir, fail);
}

function checkConfigWithBinary(r, wl, c, secrets, configMaps, etcdLive, fail) {
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
  const generated = r.values.generateDefaultUser && (!r.values.persistence.enabled || etcdStoreOn(r.values));
  const users = r.values.users && r.values.users.length ? r.values.users.map((u) => u.name)
    : r.values.usersSecret ? ['ext'] : (generated ? ['default'] : []);
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
    else if (m.name === 'etcd-tls' || m.name === 'etcd-auth') {
      // The test etcd's CA and client certificate, the password of its user.
      if (!etcdLive) { fail(`mount ${m.name} but no test etcd runs`); return null; }
      const d = path.join(dir, m.name);
      fs.mkdirSync(d);
      if (m.name === 'etcd-auth') fs.writeFileSync(path.join(d, 'password'), etcdLive.password || '', { mode: 0o600 });
      else for (const f of ['ca.crt', 'tls.crt', 'tls.key']) fs.copyFileSync(path.join(etcdLive.tlsDir, f), path.join(d, f));
      mainMoved[m.mountPath] = d;
    } else mainMoved[m.mountPath] = dir;
  }
  const argv = c.args.map((a, i) => {
    if (c.args[i - 1] === '--etcd-endpoints') {
      // Where the test's etcd listens instead of the cluster names.
      try { return a.split(',').map((u) => etcdLive.mapUrl(u)).join(','); } catch (e) { fail(`--etcd-endpoints ${a}: ${e.message}`); return a; }
    }
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
const relayWorkload = (r) => r.manifests.map((m) => m.object)
  .find((o) => (o.kind === 'Deployment' || o.kind === 'StatefulSet') && o.metadata.name === `${RELEASE}-shadowrelay`);
const container = (r) => relayWorkload(r).spec.template.spec.containers[0];

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
    // The README's example of several replicas with the release's etcd.
    name: 'readme-etcd-example',
    files: ['../../../deploy/examples/helm-values-etcd.yaml'],
    expect(r, fail) {
      const d = find(r, 'Deployment', 'sr-shadowrelay');
      const hpa = find(r, 'HorizontalPodAutoscaler');
      if (!d || !hpa || hpa.spec.minReplicas !== 3 || hpa.spec.maxReplicas !== 10) fail('a Deployment under an HPA of 3..10 expected');
      const sts = find(r, 'StatefulSet', 'sr-shadowrelay-etcd');
      if (!sts || sts.spec.replicas !== 3 || !find(r, 'PodDisruptionBudget', 'sr-shadowrelay-etcd')) fail('3 etcd members with a PDB expected');
      if (flagValue(container(r).args, '--etcd-endpoints') !== 'https://sr-shadowrelay-etcd.relay.svc.cluster.local:2379') fail('--etcd-endpoints is not the client Service over TLS');
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
    // An external etcd: three replicas with persistence (a cache), TLS client certificate and a
    // password from Secrets; a real etcd with that user and TLS stands in for it.
    name: 'etcd-external',
    files: ['etcd-external.yaml'],
    expect(r, fail) {
      const ss = find(r, 'StatefulSet', 'sr-shadowrelay');
      if (!ss || ss.spec.replicas !== 3) fail('three relay replicas with persistence expected');
      if (ss && ss.spec.podManagementPolicy !== 'Parallel') fail('replicas with the etcd store are interchangeable: Parallel');
      if (find(r, 'StatefulSet', 'sr-shadowrelay-etcd') || find(r, 'Service', 'sr-shadowrelay-etcd')) fail('etcd objects rendered for an external etcd');
      const args = container(r).args;
      const want = {
        '--etcd-endpoints': 'https://etcd-0.db.example.com:2379,https://etcd-1.db.example.com:2379,https://etcd-2.db.example.com:2379',
        '--etcd-prefix': '/relay-eu/',
        '--etcd-ca': '/etc/shadowrelay/etcd-tls/ca.crt',
        '--etcd-cert': '/etc/shadowrelay/etcd-tls/tls.crt',
        '--etcd-key': '/etc/shadowrelay/etcd-tls/tls.key',
        '--etcd-user': 'shadowrelay',
        '--etcd-password-file': '/etc/shadowrelay/etcd-auth/password',
        '--etcd-sync-interval': '2',
        '--etcd-lease-ttl': '6',
      };
      for (const [flag, v] of Object.entries(want)) if (flagValue(args, flag) !== v) fail(`${flag} ${flagValue(args, flag)}, expected ${v}`);
      const vols = new Map(ss.spec.template.spec.volumes.map((v) => [v.name, v]));
      if (((vols.get('etcd-tls') || {}).secret || {}).secretName !== 'relay-etcd-client') fail('etcd-tls volume is not Secret relay-etcd-client');
      if (((vols.get('etcd-auth') || {}).secret || {}).secretName !== 'relay-etcd-password') fail('etcd-auth volume is not Secret relay-etcd-password');
      if (!find(r, 'Secret', 'sr-shadowrelay-users')) fail('the generated default user (the same on every replica) missing');
      if (r.notes.includes('Several replicas') || !r.notes.includes('live in etcd')) fail('NOTES: the etcd store, not the multi-replica warning');
    },
  },
  {
    // The release's etcd over TLS with an HPA; the members run from the rendered StatefulSet.
    name: 'etcd-bundled-tls',
    files: ['etcd-bundled-tls.yaml'],
    expect(r, fail) {
      const sts = find(r, 'StatefulSet', 'sr-shadowrelay-etcd');
      if (!sts || sts.spec.replicas !== 3) fail('a 3-member etcd StatefulSet expected');
      const flags = sts ? etcdFlags(sts.spec.template.spec.containers[0].args, fail) : new Map();
      const domain = 'sr-shadowrelay-etcd-headless.relay.svc.cluster.local';
      const cluster = [0, 1, 2].map((i) => `sr-shadowrelay-etcd-${i}=https://sr-shadowrelay-etcd-${i}.${domain}:2380`).join(',');
      if (flags.get('--initial-cluster') !== cluster) fail(`--initial-cluster ${flags.get('--initial-cluster')}`);
      if (flags.get('--auto-compaction-mode') !== 'periodic' || flags.get('--auto-compaction-retention') !== '1h') fail('periodic compaction, 1h');
      if (!['--client-cert-auth', '--peer-client-cert-auth'].every((f) => flags.get(f) === true)) fail('client and peer certificates required');
      const vct = sts && sts.spec.volumeClaimTemplates[0];
      if (!vct || vct.spec.storageClassName !== 'fast-ssd' || vct.spec.resources.requests.storage !== '2Gi') fail('etcd volumeClaimTemplate class/size');
      const tlsVol = sts && sts.spec.template.spec.volumes.find((v) => v.name === 'tls');
      if (!tlsVol || tlsVol.secret.secretName !== 'relay-etcd-tls') fail('etcd members do not mount relay-etcd-tls');
      const pdb = find(r, 'PodDisruptionBudget', 'sr-shadowrelay-etcd');
      if (!pdb || pdb.spec.maxUnavailable !== 1) fail('etcd PDB maxUnavailable 1');
      const d = find(r, 'Deployment', 'sr-shadowrelay');
      if (!d || d.spec.replicas !== undefined || !find(r, 'HorizontalPodAutoscaler')) fail('a Deployment under an HPA expected');
      const args = container(r).args;
      if (flagValue(args, '--etcd-endpoints') !== 'https://sr-shadowrelay-etcd.relay.svc.cluster.local:2379') fail('--etcd-endpoints is not the client Service');
      if (flagValue(args, '--etcd-ca') !== '/etc/shadowrelay/etcd-tls/ca.crt') fail('--etcd-ca');
      const vol = d && d.spec.template.spec.volumes.find((v) => v.name === 'etcd-tls');
      if (!vol || vol.secret.secretName !== 'relay-etcd-tls') fail('the relay does not mount etcd.tls.secretName');
      if (find(r, 'Secret', 'sr-shadowrelay-users')) fail('generateDefaultUser=false: no users Secret');
      if (flagValue(args, '--etcd-user') !== undefined) fail('--etcd-user without store.etcd.auth');
    },
  },
  {
    // The release's etcd in plain HTTP, two relay replicas with persistence.
    name: 'etcd-bundled',
    files: ['etcd-bundled.yaml'],
    expect(r, fail) {
      const sts = find(r, 'StatefulSet', 'sr-shadowrelay-etcd');
      const flags = sts ? etcdFlags(sts.spec.template.spec.containers[0].args, fail) : new Map();
      if (!String(flags.get('--initial-cluster')).startsWith('sr-shadowrelay-etcd-0=http://sr-shadowrelay-etcd-0.sr-shadowrelay-etcd-headless.relay.svc.cluster.local:2380,')) fail(`--initial-cluster ${flags.get('--initial-cluster')}`);
      if (flags.get('--auto-compaction-retention') !== '30m') fail('etcd.autoCompactionRetention not passed');
      if (sts && sts.spec.template.spec.volumes) fail('etcd members mount volumes besides their claim without TLS');
      const ss = find(r, 'StatefulSet', 'sr-shadowrelay');
      if (!ss || ss.spec.replicas !== 2) fail('two relay replicas with persistence expected');
      const args = container(r).args;
      if (flagValue(args, '--etcd-endpoints') !== 'http://sr-shadowrelay-etcd.relay.svc.cluster.local:2379') fail('--etcd-endpoints');
      if (flagValue(args, '--etcd-prefix') !== '/relay/') fail('--etcd-prefix');
      if (args.some((a) => /^--etcd-(ca|cert|key|user|password-file)$/.test(a))) fail('TLS or auth flags without TLS or auth');
      // etcd's metrics port admits Prometheus from namespace monitoring, the other ports do not.
      const np = find(r, 'NetworkPolicy', 'sr-shadowrelay-etcd');
      const metricsRule = np && np.spec.ingress.find((rule) => rule.ports.some((p) => p.port === 2381));
      if (!metricsRule || !metricsRule.from.some((p) => p.namespaceSelector && p.namespaceSelector.matchLabels['kubernetes.io/metadata.name'] === 'monitoring')) fail('etcd metrics not open to namespace monitoring');
      if (!r.notes.includes('etcdctl')) fail('NOTES lack the etcdctl hint');
    },
  },
  {
    name: 'replicas-with-persistence-fails',
    files: ['replicas-persistence.yaml'],
    failsWith: 'cannot be combined with persistence.enabled=true without an etcd store',
  },
  {
    name: 'autoscaling-with-persistence-fails',
    files: ['autoscaling-persistence.yaml'],
    failsWith: 'cannot be combined with persistence.enabled=true without an etcd store',
  },
  {
    name: 'etcd-both-forms-fail',
    files: ['etcd-both-fails.yaml'],
    failsWith: 'store.etcd.endpoints and etcd.enabled are two ways',
  },
  {
    name: 'etcd-user-without-password-fails',
    files: ['etcd-auth-half-fails.yaml'],
    failsWith: 'store.etcd.auth.user and store.etcd.auth.passwordSecret go together',
  },
  {
    name: 'etcd-tls-on-http-endpoint-fails',
    files: ['etcd-tls-http-fails.yaml'],
    failsWith: 'endpoint http://etcd-1.example.com:2379 is not https://',
  },
  {
    name: 'etcd-external-tls-with-bundled-fails',
    files: ['etcd-store-tls-bundled-fails.yaml'],
    failsWith: 'with etcd.enabled the relay uses etcd.tls.secretName',
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
  { name: 'etcd endpoint without scheme', values: { store: { etcd: { endpoints: ['etcd:2379'] } } } },
  { name: 'etcd endpoint without port', values: { store: { etcd: { endpoints: ['https://etcd.example.com'] } } } },
  { name: 'etcd prefix without trailing slash', values: { store: { etcd: { prefix: '/relay' } } } },
  { name: 'even etcd member count', values: { etcd: { replicas: 2 } } },
  { name: 'etcd sync interval out of range', values: { store: { etcd: { syncIntervalSeconds: 0 } } } },
];

async function runCase(tc, schema) {
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
  // With an etcd store, a real etcd runs while the relay's config and probes are checked.
  const etcdLive = await startEtcd(out, fail);
  try {
    checkRendering(out, fail, etcdLive);
    tc.expect(out, fail);
  } finally {
    if (etcdLive) await etcdLive.stop();
  }
  return errors;
}

async function main() {
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
      try { errors = await runCase(tc, schema); } catch (e) { errors = [`exception: ${e.stack}`]; }
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

main().catch((e) => { console.error(e.stack); process.exitCode = 1; });
