/*
 * Minimal C TAP-to-TAP bridge: the baseline benchmarks/tap-bridge.ts compares pathsplice's
 * TAP driver against. One thread, poll(2) on both fds, then read(2)/write(2) frames from
 * one TAP to the other until each is empty (non-blocking fds). With "vnet" the TAPs are
 * opened with IFF_VNET_HDR + TUNSETOFFLOAD(CSUM|TSO4|TSO6|TSO_ECN) and the virtio-net
 * header is passed through untouched, so 64 KiB super-frames cross in one read/write.
 *
 * usage: c-tap-bridge TAP_A TAP_B [vnet]
 *   prints "ready" once both TAPs exist; on SIGUSR1 prints "frames A>B B>A bytes A>B B>A";
 *   exits on SIGTERM/SIGINT (closing the fds deletes the TAPs).
 * Read first: Documentation/networking/tuntap.rst.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static volatile sig_atomic_t stop, report;
static void on_term(int s) { (void)s; stop = 1; }
static void on_usr1(int s) { (void)s; report = 1; }

static int open_tap(const char *name, int vnet) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) { perror("open /dev/net/tun"); exit(1); }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); exit(1); }
  if (vnet) {
    int le = 1;
    ioctl(fd, TUNSETVNETLE, &le);
    if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) < 0) { perror("TUNSETOFFLOAD"); exit(1); }
  }
  return fd;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: %s TAP_A TAP_B [vnet]\n", argv[0]); return 2; }
  int vnet = argc > 3 && strcmp(argv[3], "vnet") == 0;
  int fd[2] = { open_tap(argv[1], vnet), open_tap(argv[2], vnet) };
  struct sigaction sa = { 0 };
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  printf("ready\n");
  fflush(stdout);
  static unsigned char buf[65536 + 64];
  unsigned long long frames[2] = { 0, 0 }, bytes[2] = { 0, 0 };
  struct pollfd p[2] = { { fd[0], POLLIN, 0 }, { fd[1], POLLIN, 0 } };
  while (!stop) {
    if (report) {
      report = 0;
      printf("%llu %llu %llu %llu\n", frames[0], frames[1], bytes[0], bytes[1]);
      fflush(stdout);
    }
    if (poll(p, 2, 100) < 0 && errno != EINTR) { perror("poll"); return 1; }
    for (int i = 0; i < 2; i++) {
      for (;;) {
        ssize_t n = read(fd[i], buf, sizeof buf);
        if (n <= 0) break; /* EAGAIN: this TAP is empty */
        if (write(fd[1 - i], buf, (size_t)n) == n) {
          frames[i]++;
          bytes[i] += (unsigned long long)n;
        }
      }
    }
  }
  close(fd[0]);
  close(fd[1]);
  return 0;
}
