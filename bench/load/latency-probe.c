/*
 * The latency row's load generator: one publisher at a fixed rate and one
 * subscriber, QoS 0, on blocking sockets in two threads of one process. A Node.js
 * generator adds its own wake-ups and event-loop work to every message; measured
 * against the same brokers it put 0.3-0.8 ms on the p99 (docs/benchmarks.md), more
 * than the goal itself, so this row is measured with this instead.
 *
 * Messages are the Node generator's (bench/lib/frames.ts PublishTemplate): the
 * payload starts with the stream (uint32), the sequence number (uint32) and the
 * send time (uint64 nanoseconds of CLOCK_MONOTONIC), big-endian. Every delivery
 * is checked by sequence number.
 *
 *   latency-probe PORT CLIENT_PREFIX TOPIC RATE PAYLOAD_SIZE WARMUP_MS MEASURE_MS DRAIN_MS
 *
 * Prints "measure-start" and "measure-end" as the window opens and closes (the
 * runner samples the broker's CPU then), and at the end one JSON line. Built by
 * bench/load/native-latency.ts with the machine's C compiler.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (1 << 20)
#define READ_BUFFER (1 << 16)

static double samples[MAX_SAMPLES];
static int sample_count;
static int recording;           /* set by the main thread, read by the subscriber */
static int stopping;
static uint64_t received, window_received, missing, duplicates;
static uint32_t expected_seq;

static void fail(const char *what) {
  fprintf(stderr, "latency-probe: %s: %s\n", what, errno ? strerror(errno) : "protocol error");
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void write_all(int fd, const unsigned char *bytes, size_t length) {
  while (length > 0) {
    ssize_t n = write(fd, bytes, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write");
    bytes += n;
    length -= (size_t)n;
  }
}

static void read_exactly(int fd, unsigned char *into, size_t length) {
  while (length > 0) {
    ssize_t n = read(fd, into, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("read");
    into += n;
    length -= (size_t)n;
  }
}

/* Fixed header: type byte and remaining length; returns the header's size. */
static size_t put_header(unsigned char *at, unsigned char first, size_t remaining) {
  size_t n = 0;
  at[n++] = first;
  do {
    unsigned char byte = remaining % 128;
    remaining /= 128;
    if (remaining > 0) byte |= 0x80;
    at[n++] = byte;
  } while (remaining > 0);
  return n;
}

static int dial(int port, const char *client_id) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in address = {0};
  address.sin_family = AF_INET;
  address.sin_port = htons((uint16_t)port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) fail("connect");

  /* MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s. */
  size_t id_length = strlen(client_id);
  unsigned char packet[512];
  size_t body = 10 + 2 + id_length;
  if (body > 400) { errno = 0; fail("client id too long"); }
  size_t n = put_header(packet, 0x10, body);
  const unsigned char variable[] = {0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60};
  memcpy(packet + n, variable, sizeof variable);
  n += sizeof variable;
  packet[n++] = (unsigned char)(id_length >> 8);
  packet[n++] = (unsigned char)id_length;
  memcpy(packet + n, client_id, id_length);
  n += id_length;
  write_all(fd, packet, n);

  unsigned char connack[4];
  read_exactly(fd, connack, sizeof connack);
  errno = 0;
  if (connack[0] != 0x20 || connack[3] != 0) fail("CONNACK refused");
  return fd;
}

static void subscribe(int fd, const char *topic) {
  size_t topic_length = strlen(topic);
  unsigned char packet[512];
  if (topic_length > 400) { errno = 0; fail("topic too long"); }
  size_t n = put_header(packet, 0x82, 2 + 2 + topic_length + 1);
  packet[n++] = 0;
  packet[n++] = 1; /* packet id */
  packet[n++] = (unsigned char)(topic_length >> 8);
  packet[n++] = (unsigned char)topic_length;
  memcpy(packet + n, topic, topic_length);
  n += topic_length;
  packet[n++] = 0; /* QoS 0 */
  write_all(fd, packet, n);
  unsigned char suback[5];
  read_exactly(fd, suback, sizeof suback);
  errno = 0;
  if (suback[0] != 0x90 || suback[4] > 2) fail("SUBACK refused");
}

static uint32_t be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void on_publish(const unsigned char *body, size_t length, uint64_t arrived) {
  if (length < 2) return;
  size_t at = 2 + (((size_t)body[0] << 8) | body[1]);
  if (length < at + 16) return; /* not ours */
  uint32_t seq = be32(body + at + 4);
  uint64_t sent = ((uint64_t)be32(body + at + 8) << 32) | be32(body + at + 12);
  if (seq == expected_seq) expected_seq = seq + 1;
  else if (seq > expected_seq) {
    __atomic_add_fetch(&missing, seq - expected_seq, __ATOMIC_RELAXED);
    expected_seq = seq + 1;
  } else __atomic_add_fetch(&duplicates, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&received, 1, __ATOMIC_RELAXED);
  if (__atomic_load_n(&recording, __ATOMIC_ACQUIRE)) {
    __atomic_add_fetch(&window_received, 1, __ATOMIC_RELAXED);
    if (sample_count < MAX_SAMPLES) samples[sample_count++] = (double)(arrived - sent) / 1e6;
  }
}

static void *subscriber(void *arg) {
  int fd = *(int *)arg;
  static unsigned char buffer[READ_BUFFER];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(fd, buffer + have, sizeof buffer - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (__atomic_load_n(&stopping, __ATOMIC_ACQUIRE)) return NULL;
      fail("subscriber read");
    }
    uint64_t arrived = now_ns();
    have += (size_t)n;
    size_t at = 0;
    for (;;) {
      /* Remaining length: up to four bytes of 7 bits. */
      size_t remaining = 0, header = 1;
      int complete = 0;
      for (int shift = 0; header < 5 && at + header < have; shift += 7) {
        unsigned char byte = buffer[at + header++];
        remaining |= (size_t)(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) { complete = 1; break; }
      }
      if (!complete) break;
      if (header + remaining > sizeof buffer) { errno = 0; fail("packet larger than the read buffer"); }
      if (at + header + remaining > have) break;
      if ((buffer[at] >> 4) == 3) on_publish(buffer + at + header, remaining, arrived);
      at += header + remaining;
    }
    memmove(buffer, buffer + at, have - at);
    have -= at;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void sleep_until(uint64_t deadline_ns) {
  struct timespec t = {.tv_sec = (time_t)(deadline_ns / 1000000000ull), .tv_nsec = (long)(deadline_ns % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {}
}

int main(int argc, char **argv) {
  if (argc != 10) {
    fprintf(stderr, "usage: latency-probe PORT CLIENT_PREFIX TOPIC RATE PAYLOAD_SIZE WARMUP_MS MEASURE_MS DRAIN_MS QUIET_MS\n");
    return 2;
  }
  int port = atoi(argv[1]);
  const char *prefix = argv[2], *topic = argv[3];
  double rate = atof(argv[4]);
  size_t payload_size = (size_t)atoi(argv[5]);
  uint64_t warmup_ns = (uint64_t)atoll(argv[6]) * 1000000ull, measure_ns = (uint64_t)atoll(argv[7]) * 1000000ull;
  uint64_t drain_ns = (uint64_t)atoll(argv[8]) * 1000000ull, quiet_ns = (uint64_t)atoll(argv[9]) * 1000000ull;
  if (payload_size < 16) payload_size = 16;
  if (rate <= 0 || rate > 100000) { fprintf(stderr, "latency-probe: RATE must be 1..100000\n"); return 2; }

  char id[300];
  snprintf(id, sizeof id, "%s-sub-0", prefix);
  int sub_fd = dial(port, id);
  subscribe(sub_fd, topic);
  snprintf(id, sizeof id, "%s-pub-0", prefix);
  int pub_fd = dial(port, id);
  pthread_t thread;
  if (pthread_create(&thread, NULL, subscriber, &sub_fd) != 0) fail("pthread_create");

  /* One message, encoded once; each send rewrites its sequence number and time. */
  size_t topic_length = strlen(topic);
  unsigned char message[1024];
  size_t body = 2 + topic_length + payload_size;
  if (body + 5 > sizeof message) { errno = 0; fail("message too large"); }
  memset(message, 0, sizeof message);
  size_t payload_at = put_header(message, 0x30, body);
  message[payload_at++] = (unsigned char)(topic_length >> 8);
  message[payload_at++] = (unsigned char)topic_length;
  memcpy(message + payload_at, topic, topic_length);
  payload_at += topic_length;
  size_t message_length = payload_at + payload_size;
  static unsigned char batch[64 * 1024];
  size_t per_batch = sizeof batch / message_length;

  uint64_t started = now_ns(), window_start = started + warmup_ns, window_end = window_start + measure_ns;
  uint64_t interval_ns = (uint64_t)(1e9 / rate), next = started, sent = 0, window_sent = 0;
  uint64_t opened = 0, closed = 0;
  int phase = 0; /* 0 warm-up, 1 measuring, 2 done */
  while (phase < 2) {
    next += interval_ns;
    sleep_until(next);
    uint64_t now = now_ns();
    if (phase == 0 && now >= window_start) {
      __atomic_store_n(&recording, 1, __ATOMIC_RELEASE);
      printf("measure-start\n");
      fflush(stdout);
      phase = 1;
      opened = now;
      window_sent = sent;
    } else if (phase == 1 && now >= window_end) {
      __atomic_store_n(&recording, 0, __ATOMIC_RELEASE);
      printf("measure-end\n");
      fflush(stdout);
      window_sent = sent - window_sent;
      closed = now;
      phase = 2;
      break;
    }
    /* What is due since the start: a late wake-up sends the missed messages at once. */
    uint64_t due = (uint64_t)((double)(now - started) * rate / 1e9) - sent;
    if (due > per_batch) due = per_batch;
    for (uint64_t i = 0; i < due; i++) {
      unsigned char *m = batch + i * message_length;
      memcpy(m, message, message_length);
      uint32_t seq = (uint32_t)(sent + i);
      unsigned char *p = m + payload_at;
      p[4] = seq >> 24; p[5] = seq >> 16; p[6] = seq >> 8; p[7] = seq;
      for (int b = 0; b < 8; b++) p[8 + b] = (unsigned char)(now >> (56 - 8 * b));
    }
    if (due > 0) write_all(pub_fd, batch, due * message_length);
    sent += due;
  }
  double window_ms = (double)(closed - opened) / 1e6;

  /* Drain: wait until every message sent has arrived, or nothing more arrives for QUIET_MS, or the drain time is up. */
  uint64_t drain_end = now_ns() + drain_ns, last_count = (uint64_t)-1, quiet_since = now_ns();
  for (;;) {
    uint64_t count = __atomic_load_n(&received, __ATOMIC_RELAXED) + __atomic_load_n(&missing, __ATOMIC_RELAXED);
    uint64_t now = now_ns();
    if (count >= sent || now >= drain_end) break;
    if (count != last_count) { last_count = count; quiet_since = now; }
    else if (now - quiet_since > quiet_ns) break;
    usleep(10000);
  }
  __atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
  const unsigned char disconnect[] = {0xe0, 0};
  write_all(pub_fd, disconnect, sizeof disconnect);
  write_all(sub_fd, disconnect, sizeof disconnect);
  shutdown(sub_fd, SHUT_RDWR);
  pthread_join(thread, NULL);

  /* Messages never seen at the end count as missing: the tail of the stream has no later one to reveal the gap. */
  uint64_t total_received = received;
  uint64_t lost = missing + (sent > expected_seq ? sent - expected_seq : 0);
  qsort(samples, (size_t)sample_count, sizeof(double), cmp_double);
  printf("{\"sent\":%llu,\"windowSent\":%llu,\"received\":%llu,\"windowReceived\":%llu,\"windowMs\":%.3f,\"missing\":%llu,\"duplicates\":%llu,\"latencies\":[",
         (unsigned long long)sent, (unsigned long long)window_sent, (unsigned long long)total_received,
         (unsigned long long)window_received, window_ms, (unsigned long long)lost, (unsigned long long)duplicates);
  for (int i = 0; i < sample_count; i++) printf(i == 0 ? "%.6f" : ",%.6f", samples[i]);
  printf("]}\n");
  return 0;
}
