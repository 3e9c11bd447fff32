#!/bin/bash
# start a 3-member etcd 3.4 cluster on 127.0.0.1 (clients 23791-23793, peers 23801-23803)
D=${D:-/tmp/etcdresearch/cluster}; mkdir -p "$D"
CL="m1=http://127.0.0.1:23801,m2=http://127.0.0.1:23802,m3=http://127.0.0.1:23803"
for i in 1 2 3; do
  etcd --name m$i --data-dir $D/m$i.etcd \
    --listen-client-urls http://127.0.0.1:2379$i --advertise-client-urls http://127.0.0.1:2379$i \
    --listen-peer-urls http://127.0.0.1:2380$i --initial-advertise-peer-urls http://127.0.0.1:2380$i \
    --initial-cluster $CL --initial-cluster-state new --initial-cluster-token sr-test \
    --logger zap $EXTRA --log-outputs $D/m$i.log >/dev/null 2>&1 &
  echo $! > $D/m$i.pid
done
