// SPDX-License-Identifier: Apache-2.0
// Runs the chart's container for real and asks it what the kubelet would: starts the relay binary
// with the rendered args (paths already moved into a temporary directory by chart_test.js, ports
// moved to free loopback ports here), then performs the readiness and liveness probes exactly as
// rendered (a gRPC health Check over HTTP/2 with no credentials, or an HTTP GET), and finally
// sends SIGTERM and expects exit 0 within the drain timeout. chart_test.js calls it once per value
// set and reports what it prints on failure.
//
// usage: node probe_live.js SPEC.json
//   SPEC: {relay, argv, env, ports: {control, metrics, relay}, containerPorts, probes, drainSeconds}
'use strict';

const fs = require('fs');
const http = require('http');
const http2 = require('http2');
const net = require('net');
const { spawn } = require('child_process');

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const LOOPBACK = '127.0.0.1';
const START_LIMIT_MS = 15000;
const PROBE_TIMEOUT_MS = 3000;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, LOOPBACK, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// grpc.health.v1.Health/Check with an empty HealthCheckRequest (service ""), as the kubelet's
// grpc probe sends it: resolves to the serving status number (1 = SERVING), rejects otherwise.
function grpcHealth(port) {
  return new Promise((resolve, reject) => {
    const client = http2.connect(`http://${LOOPBACK}:${port}`);
    const done = (err, value) => {
      client.close();
      if (err) reject(err); else resolve(value);
    };
    client.on('error', (e) => done(e));
    const req = client.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks = [];
    let grpcStatus = null;
    req.on('response', (headers) => {
      if (headers['grpc-status'] !== undefined) grpcStatus = headers['grpc-status'];
    });
    req.on('trailers', (trailers) => { grpcStatus = trailers['grpc-status']; });
    req.on('data', (c) => chunks.push(c));
    req.on('error', (e) => done(e));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (String(grpcStatus) !== '0') return done(new Error(`grpc-status ${grpcStatus}`));
      // 5-byte gRPC frame prefix, then HealthCheckResponse: field 1 (status), varint.
      if (body.length < 7 || body[5] !== 0x08) return done(new Error(`unexpected body ${body.toString('hex')}`));
      return done(null, body[6]);
    });
    req.setTimeout(PROBE_TIMEOUT_MS, () => { req.close(); done(new Error('timed out')); });
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

function httpGet(port, path) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: LOOPBACK, port, path, timeout: PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

// The container port a probe's port refers to (a number, or the name of a container port).
function containerPort(port) {
  if (typeof port === 'number') return port;
  const p = spec.containerPorts.find((x) => x.name === port);
  if (!p) throw new Error(`probe port ${port} names no container port`);
  return p.containerPort;
}

async function probeOnce(probe, moved) {
  if (probe.grpc) {
    const status = await grpcHealth(moved(containerPort(probe.grpc.port)));
    if (status !== 1) throw new Error(`gRPC health status ${status}, not SERVING`);
    return 'grpc SERVING';
  }
  if (probe.httpGet) {
    const code = await httpGet(moved(containerPort(probe.httpGet.port)), probe.httpGet.path);
    if (code < 200 || code >= 400) throw new Error(`GET ${probe.httpGet.path}: HTTP ${code}`);
    return `GET ${probe.httpGet.path} ${code}`;
  }
  throw new Error(`probe without grpc or httpGet: ${JSON.stringify(probe)}`);
}

async function main() {
  const map = new Map();
  for (const key of ['control', 'metrics', 'relay']) map.set(spec.ports[key], await freePort());
  const moved = (port) => {
    if (!map.has(port)) throw new Error(`port ${port} is none of the control, metrics or relay ports`);
    return map.get(port);
  };
  // Listen on loopback, on the moved ports.
  const argv = spec.argv.map((a, i) => {
    const flag = spec.argv[i - 1];
    if (flag === '-s') return LOOPBACK;
    if (flag === '-p') return String(moved(Number(a)));
    if (flag === '--control-listen' || flag === '--metrics-listen') {
      return `${LOOPBACK}:${moved(Number(a.slice(a.lastIndexOf(':') + 1)))}`;
    }
    return a;
  });
  const child = spawn(spec.relay, argv, { env: spec.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  let exited = null;
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => { exited = { code, signal }; resolve(); }));

  const problems = [];
  try {
    for (const [which, probe] of [['readiness', spec.probes[0]], ['liveness', spec.probes[1]]]) {
      const deadline = Date.now() + START_LIMIT_MS;
      let last = null;
      let ok = null;
      while (Date.now() < deadline && exited === null) {
        try { ok = await probeOnce(probe, moved); break; } catch (e) { last = e; }
        await sleep(100);
      }
      if (ok) console.log(`${which}: ${ok}`);
      else problems.push(`${which} probe never succeeded: ${last && last.message}${exited ? ` (server exited ${JSON.stringify(exited)})` : ''}`);
    }
  } finally {
    if (exited === null) {
      const t0 = Date.now();
      child.kill('SIGTERM');
      const limit = (spec.drainSeconds + 5) * 1000;
      let timer;
      await Promise.race([exit, new Promise((resolve) => { timer = setTimeout(resolve, limit); })]);
      clearTimeout(timer);
      if (exited === null) {
        child.kill('SIGKILL');
        problems.push(`no exit within ${limit} ms of SIGTERM`);
        await exit;
      } else if (exited.code !== 0) {
        problems.push(`exit ${JSON.stringify(exited)} after SIGTERM`);
      } else {
        console.log(`SIGTERM: exit 0 after ${Date.now() - t0} ms`);
      }
    }
  }
  if (problems.length) {
    console.log(problems.join('\n'));
    console.log(`--- server output ---\n${log.slice(-4000)}`);
    process.exitCode = 1;
  }
}

main().catch((e) => { console.log(`probe_live: ${e.stack}`); process.exitCode = 1; });
