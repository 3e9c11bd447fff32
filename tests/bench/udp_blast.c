// SPDX-License-Identifier: Apache-2.0
// UDP load generator and sink for tests/bench/udp_bench.py (compiled there with `cc -O2`).
//
// One process, two threads: a sink bound to 127.0.0.1:TARGET counts the datagrams that arrive
// (what the relay chain delivered), and the sending thread writes fixed-size datagrams from
// FLOWS sockets (one source port each, connected to 127.0.0.1:TUNNEL) round-robin, in sendmmsg
// batches, for SECONDS, as fast as it can or paced at RATE datagrams/s in all.
//
// Every datagram carries a header (magic, run tag, flow, sequence number), so the sink counts
// only this run's measured datagrams: warm-up datagrams and anything else are counted apart.
// Phases: warm-up (each flow sends one datagram every 20 ms until the sink has seen one from
// every flow, at most WARMUP seconds: the relays then hold an association per flow), then the
// measured phase, then DRAIN ms for datagrams still in the relays' queues.
// stdout: "measure" when the measured phase starts, "sent" when sending stops, then one line of
// JSON with the counters. Exit status 0, or 3 when the warm-up saw nothing through the chain.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x53525542u  // "SRUB"
#define MAX_FLOWS 64
#define BATCH 32
#define RX_BATCH 64
#define HEADER 24

struct header {
  uint32_t magic;
  uint32_t tag;
  uint32_t flow;
  uint32_t reserved;
  uint64_t seq;
};

static int g_flows = 4;
static int g_size = 1200;
static uint32_t g_warm_tag, g_measure_tag;
static volatile int g_stop_rx;
static int g_sink_fd = -1;

// Written by the receiver thread; read by the sender during the warm-up (atomics) and by main
// after the join.
static uint64_t g_warm_rx[MAX_FLOWS];
static uint64_t g_rx[MAX_FLOWS];
static uint64_t g_rx_bytes;
static uint64_t g_max_seq[MAX_FLOWS];
static uint64_t g_reordered;
static uint64_t g_foreign;    // not ours: wrong magic, tag or size
static uint64_t g_truncated;  // larger than the buffer
static double g_first_rx = -1, g_last_rx = -1;
static struct timespec g_t0;
static volatile int g_measuring;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double since_t0(void) {
  return now_s() - ((double)g_t0.tv_sec + (double)g_t0.tv_nsec / 1e9);
}

static void die(const char* what) {
  printf("{\"error\":\"%s: %s\"}\n", what, strerror(errno));
  fflush(stdout);
  exit(2);
}

static void* receiver(void* arg) {
  (void)arg;
  size_t cap = (size_t)g_size + 64;
  char* bufs = malloc(cap * RX_BATCH);
  struct mmsghdr msgs[RX_BATCH];
  struct iovec iov[RX_BATCH];
  if (!bufs) return NULL;
  for (int i = 0; i < RX_BATCH; ++i) {
    iov[i].iov_base = bufs + cap * (size_t)i;
    iov[i].iov_len = cap;
  }
  while (!g_stop_rx) {
    for (int i = 0; i < RX_BATCH; ++i) {
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(g_sink_fd, msgs, RX_BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) continue;  // SO_RCVTIMEO (checks g_stop_rx) or EINTR
    int measuring = g_measuring;
    for (int i = 0; i < n; ++i) {
      unsigned len = msgs[i].msg_len;
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        ++g_truncated;
        continue;
      }
      struct header h;
      if (len != (unsigned)g_size) {
        ++g_foreign;
        continue;
      }
      memcpy(&h, iov[i].iov_base, sizeof h);
      if (h.magic != MAGIC || h.flow >= (uint32_t)g_flows) {
        ++g_foreign;
        continue;
      }
      if (h.tag == g_warm_tag) {
        __atomic_add_fetch(&g_warm_rx[h.flow], 1, __ATOMIC_RELAXED);
        continue;
      }
      if (h.tag != g_measure_tag || !measuring) {
        ++g_foreign;
        continue;
      }
      if (g_rx[h.flow] > 0 && h.seq < g_max_seq[h.flow]) {
        ++g_reordered;
      } else {
        g_max_seq[h.flow] = h.seq;
      }
      ++g_rx[h.flow];
      g_rx_bytes += len;
      double t = since_t0();
      if (g_first_rx < 0) g_first_rx = t;
      g_last_rx = t;
    }
  }
  free(bufs);
  return NULL;
}

// Drops the kernel counted on the sink socket (last column of /proc/net/udp), -1 if unknown.
static long sink_drops(int port) {
  FILE* f = fopen("/proc/net/udp", "r");
  if (!f) return -1;
  char line[512];
  char want[32];
  snprintf(want, sizeof want, "0100007F:%04X", port);
  long drops = -1;
  if (!fgets(line, sizeof line, f)) {
    fclose(f);
    return -1;
  }
  while (fgets(line, sizeof line, f)) {
    char local[64];
    if (sscanf(line, "%*s %63s", local) != 1 || strcmp(local, want) != 0) continue;
    char* last = NULL;  // the last field (lines end in padding spaces)
    for (char* tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n")) last = tok;
    if (last) drops = strtol(last, NULL, 10);
    break;
  }
  fclose(f);
  return drops;
}

static void usage(void) {
  fprintf(stderr,
          "usage: udp_blast --tunnel-port T --target-port P [--flows 4] [--size 1200]\n"
          "                 [--seconds 5] [--rate 0 (datagrams/s in all; 0 = unlimited)]\n"
          "                 [--drain-ms 500] [--warmup 5]\n");
  exit(2);
}

int main(int argc, char** argv) {
  int tunnel_port = 0, target_port = 0, drain_ms = 500;
  double seconds = 5, rate = 0, warmup = 5;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (!strcmp(a, "--tunnel-port")) tunnel_port = atoi(v);
    else if (!strcmp(a, "--target-port")) target_port = atoi(v);
    else if (!strcmp(a, "--flows")) g_flows = atoi(v);
    else if (!strcmp(a, "--size")) g_size = atoi(v);
    else if (!strcmp(a, "--seconds")) seconds = atof(v);
    else if (!strcmp(a, "--rate")) rate = atof(v);
    else if (!strcmp(a, "--drain-ms")) drain_ms = atoi(v);
    else if (!strcmp(a, "--warmup")) warmup = atof(v);
    else usage();
  }
  if (tunnel_port <= 0 || tunnel_port > 65535 || target_port <= 0 || target_port > 65535 ||
      g_flows < 1 || g_flows > MAX_FLOWS || g_size < HEADER || g_size > 65000 ||
      seconds <= 0 || seconds > 3600 || rate < 0 || drain_ms < 0 || drain_ms > 60000 ||
      warmup <= 0 || warmup > 600)
    usage();

  struct timespec seed;
  clock_gettime(CLOCK_REALTIME, &seed);
  srandom((unsigned)(seed.tv_nsec ^ (long)getpid()));
  g_warm_tag = (uint32_t)random();
  g_measure_tag = g_warm_tag ^ 0x5a5a5a5au;

  struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons((uint16_t)target_port)};
  struct sockaddr_in tunnel = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tunnel_port)};
  inet_pton(AF_INET, "127.0.0.1", &target.sin_addr);
  inet_pton(AF_INET, "127.0.0.1", &tunnel.sin_addr);

  g_sink_fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (g_sink_fd < 0) die("socket");
  int rcvbuf = 4 << 20;
  setsockopt(g_sink_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
  setsockopt(g_sink_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (bind(g_sink_fd, (struct sockaddr*)&target, sizeof target) < 0) die("bind sink");

  int fds[MAX_FLOWS];
  for (int f = 0; f < g_flows; ++f) {
    fds[f] = socket(AF_INET, SOCK_DGRAM, 0);
    if (fds[f] < 0) die("socket");
    if (connect(fds[f], (struct sockaddr*)&tunnel, sizeof tunnel) < 0) die("connect");
  }

  clock_gettime(CLOCK_MONOTONIC, &g_t0);
  pthread_t rx;
  if (pthread_create(&rx, NULL, receiver, NULL) != 0) die("pthread_create");

  // Datagrams: one buffer per batch slot, header rewritten per send.
  char* bufs = malloc((size_t)g_size * BATCH);
  if (!bufs) die("malloc");
  for (int i = 0; i < g_size * BATCH; ++i) bufs[i] = (char)((i * 7) % 251);
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  for (int i = 0; i < BATCH; ++i) {
    iov[i].iov_base = bufs + (size_t)g_size * (size_t)i;
    iov[i].iov_len = (size_t)g_size;
  }
  uint64_t seq[MAX_FLOWS] = {0};
  uint64_t sent_per_flow[MAX_FLOWS] = {0};

  // Warm-up: bounded by `warmup` seconds.
  double w0 = now_s();
  int warmed = 0;
  while (now_s() - w0 < warmup) {
    warmed = 1;
    for (int f = 0; f < g_flows; ++f) {
      if (__atomic_load_n(&g_warm_rx[f], __ATOMIC_RELAXED) > 0) continue;
      warmed = 0;
      struct header h = {MAGIC, g_warm_tag, (uint32_t)f, 0, seq[f]++};
      memcpy(iov[0].iov_base, &h, sizeof h);
      (void)send(fds[f], iov[0].iov_base, (size_t)g_size, MSG_DONTWAIT);
    }
    if (warmed) break;
    usleep(20000);
  }
  double warmup_s = now_s() - w0;
  if (!warmed) {
    g_stop_rx = 1;
    pthread_join(rx, NULL);
    printf("{\"error\":\"warm-up: after %.1f s the sink had seen nothing from flows", warmup_s);
    for (int f = 0; f < g_flows; ++f)
      if (!g_warm_rx[f]) printf(" %d", f);
    printf("\",\"warmup_s\":%.3f}\n", warmup_s);
    fflush(stdout);
    return 3;
  }
  usleep(100000);  // let warm-up stragglers arrive before the measured tag starts

  for (int f = 0; f < g_flows; ++f) seq[f] = 0;
  uint64_t sent = 0, send_calls = 0;
  uint64_t err_nobufs = 0, err_again = 0, err_refused = 0, err_other = 0;
  int batch = BATCH;
  if (rate > 0) {
    batch = (int)(rate / 2000);  // at least 2000 batches per second when paced
    if (batch < 1) batch = 1;
    if (batch > BATCH) batch = BATCH;
  }
  clock_gettime(CLOCK_MONOTONIC, &g_t0);
  g_measuring = 1;
  printf("measure\n");
  fflush(stdout);
  double t0 = now_s(), t = t0;
  int flow = 0;
  while ((t = now_s()) - t0 < seconds) {
    if (rate > 0) {
      double due = rate * (t - t0);
      if ((double)sent >= due) {
        double wait = ((double)sent - due + 1) / rate;
        if (wait > 0.001) wait = 0.001;
        struct timespec ts = {0, (long)(wait * 1e9)};
        nanosleep(&ts, NULL);
        continue;
      }
    }
    int fd = fds[flow];
    for (int i = 0; i < batch; ++i) {
      struct header h = {MAGIC, g_measure_tag, (uint32_t)flow, 0, seq[flow] + (uint64_t)i};
      memcpy(iov[i].iov_base, &h, sizeof h);
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = sendmmsg(fd, msgs, (unsigned)batch, 0);
    ++send_calls;
    if (n < 0) {
      if (errno == ENOBUFS) ++err_nobufs;
      else if (errno == EAGAIN || errno == EWOULDBLOCK) ++err_again;
      else if (errno == ECONNREFUSED) ++err_refused;
      else if (errno != EINTR) ++err_other;
    } else {
      sent += (uint64_t)n;
      sent_per_flow[flow] += (uint64_t)n;
      seq[flow] += (uint64_t)n;
    }
    flow = (flow + 1) % g_flows;
  }
  double send_s = now_s() - t0;
  printf("sent\n");
  fflush(stdout);
  usleep((useconds_t)drain_ms * 1000);
  g_stop_rx = 1;
  pthread_join(rx, NULL);
  long drops = sink_drops(target_port);

  uint64_t received = 0, warm_rx = 0;
  for (int f = 0; f < g_flows; ++f) {
    received += g_rx[f];
    warm_rx += g_warm_rx[f];
  }
  printf("{\"flows\":%d,\"size\":%d,\"rate\":%.0f,\"seconds\":%.3f,\"send_s\":%.6f,"
         "\"sent\":%llu,\"received\":%llu,\"received_bytes\":%llu,\"reordered\":%llu,"
         "\"foreign\":%llu,\"truncated\":%llu,\"warmup_s\":%.3f,\"warmup_received\":%llu,"
         "\"first_rx_s\":%.6f,\"last_rx_s\":%.6f,\"sink_drops\":%ld,\"send_calls\":%llu,"
         "\"send_errors\":{\"ENOBUFS\":%llu,\"EAGAIN\":%llu,\"ECONNREFUSED\":%llu,"
         "\"other\":%llu},\"sent_per_flow\":[",
         g_flows, g_size, rate, seconds, send_s, (unsigned long long)sent,
         (unsigned long long)received, (unsigned long long)g_rx_bytes,
         (unsigned long long)g_reordered, (unsigned long long)g_foreign,
         (unsigned long long)g_truncated, warmup_s, (unsigned long long)warm_rx, g_first_rx,
         g_last_rx, drops, (unsigned long long)send_calls, (unsigned long long)err_nobufs,
         (unsigned long long)err_again, (unsigned long long)err_refused,
         (unsigned long long)err_other);
  for (int f = 0; f < g_flows; ++f)
    printf("%s%llu", f ? "," : "", (unsigned long long)sent_per_flow[f]);
  printf("],\"received_per_flow\":[");
  for (int f = 0; f < g_flows; ++f) printf("%s%llu", f ? "," : "", (unsigned long long)g_rx[f]);
  printf("]}\n");
  fflush(stdout);
  return 0;
}
