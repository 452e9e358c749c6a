// kpod-workload: deterministic workloads for kpod's real-kernel tests.
//
// Built statically by the fakepod test harness (gcc -static), so that the only system calls,
// forks and execs inside a fake pod are the ones a test asks for: a static binary has no
// dynamic loader that would open and close libraries.
//
// Before doing anything it joins the namespaces listed in $KPOD_SETNS (colon-separated
// nsfs paths), then waits at a gate (see gate()). The harness moves the process into its
// cgroups while it waits, so everything after the gate is charged to the fake pod and nothing
// before it is, except the return of the gate's read(2).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
	fprintf(stderr, "kpod-workload: %s: %s\n", what, strerror(errno));
	exit(111);
}

static long num(const char *s) {
	char *end;
	long v = strtol(s, &end, 0);
	if (*s == 0 || *end != 0 || v < 0) {
		fprintf(stderr, "kpod-workload: bad number %s\n", s);
		exit(112);
	}
	return v;
}

static void join_namespaces(void) {
	const char *list = getenv("KPOD_SETNS");
	if (!list || !*list)
		return;
	char *copy = strdup(list), *save = NULL;
	for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die(p);
		if (setns(fd, 0) < 0)
			die("setns");
		close(fd);
	}
	free(copy);
}

// gate reports "at the gate" on $KPOD_READY_FD and waits for one byte on $KPOD_GATE_FD. The
// descriptors stay open afterwards: closing them would add a close(2) to the pod's counts.
// schedstat_at_gate is /proc/self/schedstat (run ns, run-queue wait ns, switches-in) just
// before the process blocks at its gate: everything after it happens in the pod.
static unsigned long long schedstat_at_gate[3];

static void read_schedstat(unsigned long long v[3]) {
	FILE *f = fopen("/proc/self/schedstat", "r");
	if (!f || fscanf(f, "%llu %llu %llu", &v[0], &v[1], &v[2]) != 3)
		die("schedstat");
	fclose(f);
}

// rusage_at_gate is this process's resource usage right after its gate, in the pod.
static struct rusage rusage_at_gate;

static void gate(void) {
	const char *g = getenv("KPOD_GATE_FD"), *r = getenv("KPOD_READY_FD");
	if (!g || !r)
		return;
	read_schedstat(schedstat_at_gate);
	char c = 'g';
	if (write((int)num(r), &c, 1) != 1)
		die("gate ready");
	if (read((int)num(g), &c, 1) != 1)
		die("gate");
}

// ready tells the harness (which reads stdout) that the setup phase is over.
static void ready(void) {
	if (write(1, "ready\n", 6) != 6)
		die("ready");
}

static void *thread_main(void *arg) { return arg; }

// mfault PATH PAGES: map the first PAGES pages of a file that is not in the page cache, with
// readahead off, and read one byte of each (one major fault per page); print the kernel's own
// count of this process's major faults since the gate ("majflt N").
static int do_mfault(const char *path, long pages) {
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die(path);
	long ps = sysconf(_SC_PAGESIZE);
	volatile char *p = mmap(NULL, pages * ps, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	if (madvise((void *)p, pages * ps, MADV_RANDOM) < 0)
		die("madvise");
	long sum = 0;
	for (long i = 0; i < pages; i++)
		sum += p[i * ps];
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		die("getrusage");
	printf("majflt %ld\n", ru.ru_majflt - rusage_at_gate.ru_majflt + (sum & 0) );
	fflush(stdout);
	return 0;
}

// getppid N: N calls of getppid.
static int do_getppid(long n) {
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	return 0;
}

// close N: N calls of close(-1), each failing with EBADF.
static int do_close(long n) {
	for (long i = 0; i < n; i++)
		syscall(SYS_close, -1);
	return 0;
}

// hop N R A B: R rounds; round r moves the process into cgroup A (r even) or B (r odd), by
// writing 0 to the cgroup.procs file it opened before its gate (A and B are their paths),
// moves it to the next CPU it may run on, and makes N calls of close(-1). The moves cost
// write(2) and sched_setaffinity(2) calls only.
static int hop_fd[2] = {-1, -1};

static void hop_open(const char *a, const char *b) {
	hop_fd[0] = open(a, O_WRONLY | O_CLOEXEC);
	hop_fd[1] = open(b, O_WRONLY | O_CLOEXEC);
	if (hop_fd[0] < 0 || hop_fd[1] < 0)
		die("open cgroup.procs");
}

static int do_hop(long n, long rounds) {
	cpu_set_t allowed;
	if (sched_getaffinity(0, sizeof allowed, &allowed) < 0)
		die("sched_getaffinity");
	int cpu = -1;
	for (long r = 0; r < rounds; r++) {
		if (write(hop_fd[r & 1], "0", 1) != 1)
			die("write cgroup.procs");
		do
			cpu = (cpu + 1) % CPU_SETSIZE;
		while (!CPU_ISSET(cpu, &allowed));
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof set, &set) < 0)
			die("sched_setaffinity");
		for (long i = 0; i < n; i++)
			syscall(SYS_close, -1);
	}
	return 0;
}

// round_trips makes r one-byte round trips over two pipes with a forked child and returns
// the child's pid. The child first moves itself into the cgroup of hop_fd[1] if move (and
// pins itself again: moving into a cgroup with cpuset can reset that); after its trips it
// exits, or with park closes stdout and stderr (the harness waits for them to close when it
// ends the parent) and sleeps.
static void pin_cpu(void);

static pid_t round_trips(long r, int move, int park) {
	int a[2], b[2];
	if (pipe(a) < 0 || pipe(b) < 0)
		die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	char c = 'x';
	if (pid == 0) {
		if (move) {
			if (write(hop_fd[1], "0", 1) != 1)
				_exit(3);
			pin_cpu();
		}
		for (long i = 0; i < r; i++)
			if (read(a[0], &c, 1) != 1 || write(b[1], &c, 1) != 1)
				_exit(1);
		if (park) {
			close(1);
			close(2);
			for (;;)
				pause();
		}
		_exit(0);
	}
	for (long i = 0; i < r; i++)
		if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
			die("round trip");
	return pid;
}

// turns R A B: R round trips between this process, in cgroup A where it started, and a child
// that first moves itself into cgroup B; both take turns on the CPU in $KPOD_CPU, if set.
// Reads: R in each, plus the parent's gate.
static int do_turns(long r) {
	pid_t pid = round_trips(r, 1, 0);
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("turns: child");
	return 0;
}

// fork N M: N child processes that exit at once, then M threads that return at once.
static int do_fork(long n, long m) {
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0)
			_exit(0);
		if (waitpid(pid, NULL, 0) < 0)
			die("waitpid");
	}
	for (long i = 0; i < m; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, thread_main, NULL) != 0)
			die("pthread_create");
		pthread_join(t, NULL);
	}
	return 0;
}

// exec K: a chain of K execve calls of this binary.
static int do_exec(const char *self, long k) {
	if (k == 0)
		return 0;
	char buf[32];
	snprintf(buf, sizeof buf, "%ld", k - 1);
	char *argv[] = {(char *)self, "exec", buf, NULL};
	unsetenv("KPOD_GATE_FD");
	unsetenv("KPOD_READY_FD");
	unsetenv("KPOD_SETNS");
	execv("/proc/self/exe", argv);
	die("execv");
	return 1;
}

// dwrite/dread PATH BYTES BS: O_DIRECT I/O in BS-sized requests. No fsync: an O_DIRECT write
// is on the device when it returns, and a flush would be one more (empty) write request that
// io.stat counts.
static int do_direct(int write_mode, const char *path, long bytes, long bs) {
	int fd = open(path, (write_mode ? O_WRONLY | O_CREAT : O_RDONLY) | O_DIRECT, 0600);
	if (fd < 0)
		die(path);
	void *buf;
	if (posix_memalign(&buf, 4096, bs))
		die("posix_memalign");
	memset(buf, 0x5a, bs);
	for (long done = 0; done < bytes; done += bs) {
		ssize_t r = write_mode ? pwrite(fd, buf, bs, done) : pread(fd, buf, bs, done);
		if (r != bs)
			die(write_mode ? "pwrite" : "pread");
	}
	close(fd);
	return 0;
}

// alloc BYTES: allocate and touch BYTES of anonymous memory, say ready, then wait to be killed.
static int do_alloc(long bytes) {
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	for (long i = 0; i < bytes; i += 4096)
		p[i] = 1;
	ready();
	for (;;)
		pause();
	return 0;
}

// udp ADDR PORT COUNT SIZE: COUNT datagrams of SIZE payload bytes.
static int do_udp(const char *addr, long port, long count, long size) {
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0)
		die("socket");
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		die("inet_pton");
	char *buf = calloc(1, size ? size : 1);
	for (long i = 0; i < count; i++)
		if (sendto(s, buf, size, 0, (struct sockaddr *)&sa, sizeof sa) != size)
			die("sendto");
	close(s);
	return 0;
}

// tcpserver PORT C: accept C connections one after the other, read each to EOF, then close
// it; print "received <bytes>".
static int do_tcpserver(long port, long conns) {
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		die("socket");
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 128) < 0)
		die("listen");
	ready();
	static char buf[65536];
	long long total = 0;
	for (long i = 0; i < conns; i++) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			die("accept");
		ssize_t n;
		while ((n = read(c, buf, sizeof buf)) > 0)
			total += n;
		if (n < 0)
			die("read");
		close(c);
	}
	printf("received %lld\n", total);
	fflush(stdout);
	return 0;
}

// synfail ADDR PORT C: C connects at once to a port whose SYNs are dropped, each with
// TCP_SYNCNT 1 (the kernel gives up after a few seconds of retransmitting its SYN); once every
// one has failed, print "timedout N": how many failed with ETIMEDOUT.
static int do_synfail(const char *addr, long port, long conns) {
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fds[64];
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1 || conns < 1 || conns > 64)
		die("synfail arguments");
	for (long i = 0; i < conns; i++) {
		int one = 1;
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (fds[i] < 0 || setsockopt(fds[i], IPPROTO_TCP, TCP_SYNCNT, &one, sizeof one) < 0)
			die("socket");
		if (connect(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0 || errno != EINPROGRESS)
			die("connect");
	}
	long timedout = 0;
	for (long i = 0; i < conns; i++) {
		struct pollfd p = {.fd = fds[i], .events = POLLOUT};
		int err = 0;
		socklen_t len = sizeof err;
		if (poll(&p, 1, 30000) != 1 || getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			die("poll");
		timedout += err == ETIMEDOUT;
		close(fds[i]);
	}
	printf("timedout %ld\n", timedout);
	fflush(stdout);
	return 0;
}

// tcpclient ADDR PORT C BYTES [hold]: C connections one after the other, each sending BYTES
// bytes, then waiting for the server to close; print "sent <bytes>". With hold the last
// connection stays open: after its bytes the client prints "sent <bytes>" and waits in
// pause(), so that a test can look at a live socket.
static int do_tcpclient(const char *addr, long port, long conns, long bytes, int hold) {
	static char buf[65536];
	long long total = 0;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		die("inet_pton");
	for (long i = 0; i < conns; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0)
			die("socket");
		if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
			die("connect");
		for (long done = 0; done < bytes;) {
			long chunk = bytes - done < (long)sizeof buf ? bytes - done : (long)sizeof buf;
			ssize_t n = write(s, buf, chunk);
			if (n <= 0)
				die("write");
			done += n;
			total += n;
		}
		if (hold && i == conns - 1) {
			printf("sent %lld\n", total);
			fflush(stdout);
			for (;;)
				pause();
		}
		shutdown(s, SHUT_WR);
		while (read(s, buf, sizeof buf) > 0)
			;
		close(s);
	}
	printf("sent %lld\n", total);
	fflush(stdout);
	return 0;
}

// bwrite PATH PAGES: write PAGES pages through the page cache to a new file (no fsync).
static int do_bwrite(const char *path, long pages) {
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die(path);
	static char page[4096];
	memset(page, 0x5a, sizeof page);
	for (long i = 0; i < pages; i++)
		if (write(fd, page, sizeof page) != (ssize_t)sizeof page)
			die("write");
	close(fd);
	return 0;
}

// pingpong R [park]: R one-byte round trips over two pipes between this process and a child,
// then print the kernel's own count of context switches of both processes since the gate
// ("switches N": voluntary + involuntary from getrusage, the child's after it was reaped).
// With park neither process exits: the child waits in pause() after its last round trip,
// this process prints "switches BEFORE CHILDPID" (its own count at the start) and waits in
// pause() too, so that a test reads both final counts from /proc/<pid>/status while neither
// can switch any more (an exiting child can be preempted after its parent reaped it, and
// its last schedule() then comes after the count).
static int do_pingpong(long r, int park) {
	struct rusage before = rusage_at_gate, self, child;
	pid_t pid = round_trips(r, 0, park);
	if (park) {
		printf("switches %ld %d\n", before.ru_nvcsw + before.ru_nivcsw, (int)pid);
		fflush(stdout);
		for (;;)
			pause();
	}
	waitpid(pid, NULL, 0);
	if (getrusage(RUSAGE_SELF, &self) < 0 || getrusage(RUSAGE_CHILDREN, &child) < 0)
		die("getrusage");
	long n = self.ru_nvcsw + self.ru_nivcsw - before.ru_nvcsw - before.ru_nivcsw + child.ru_nvcsw +
		 child.ru_nivcsw;
	printf("switches %ld\n", n);
	fflush(stdout);
	return 0;
}

// spin MS [park]: burn CPU for MS milliseconds of wall time, then print the kernel's own
// scheduling statistics of this process since its gate (/proc/self/schedstat: run ns,
// run-queue wait ns, number of times it was switched in), which tests compare kpod's
// numbers with. With park it then waits in pause(), so that a test reads its final
// /proc/<pid>/schedstat when no more waits can happen.
static int do_spin(long ms, int park) {
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	volatile unsigned long x = 0;
	do {
		for (int i = 0; i < 100000; i++)
			x += i;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < ms);
	unsigned long long v[3];
	read_schedstat(v);
	printf("schedstat %llu %llu %llu\n", v[0] - schedstat_at_gate[0], v[1] - schedstat_at_gate[1],
	       v[2] - schedstat_at_gate[2]);
	fflush(stdout);
	while (park)
		pause();
	return 0;
}

// pin_cpu pins the process to the CPU in $KPOD_CPU, so that tests can make pods contend.
static void pin_cpu(void) {
	const char *s = getenv("KPOD_CPU");
	if (!s)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET((int)num(s), &set);
	if (sched_setaffinity(0, sizeof set, &set) < 0)
		die("sched_setaffinity");
}

int main(int argc, char **argv) {
	join_namespaces();
	if (argc == 6 && !strcmp(argv[1], "hop"))
		hop_open(argv[4], argv[5]); /* before the gate: the open and its fds are not the pod's */
	if (argc == 5 && !strcmp(argv[1], "turns"))
		hop_open(argv[3], argv[4]);
	gate();
	if (getrusage(RUSAGE_SELF, &rusage_at_gate) < 0)
		die("getrusage");
	/* After the gate: moving a task into a cgroup with the cpuset controller resets its
	 * affinity on some kernels (6.1 on pure v2). */
	pin_cpu();
	if (argc < 2)
		goto usage;
	const char *mode = argv[1];
	if (!strcmp(mode, "close") && argc == 3)
		return do_close(num(argv[2]));
	if (!strcmp(mode, "turns") && argc == 5)
		return do_turns(num(argv[2]));
	if (!strcmp(mode, "hop") && argc == 6)
		return do_hop(num(argv[2]), num(argv[3]));
	if (!strcmp(mode, "fork") && argc == 4)
		return do_fork(num(argv[2]), num(argv[3]));
	if (!strcmp(mode, "exec") && argc == 3)
		return do_exec(argv[0], num(argv[2]));
	if (!strcmp(mode, "dwrite") && argc == 5)
		return do_direct(1, argv[2], num(argv[3]), num(argv[4]));
	if (!strcmp(mode, "dread") && argc == 5)
		return do_direct(0, argv[2], num(argv[3]), num(argv[4]));
	if (!strcmp(mode, "alloc") && argc == 3)
		return do_alloc(num(argv[2]));
	if (!strcmp(mode, "udp") && argc == 6)
		return do_udp(argv[2], num(argv[3]), num(argv[4]), num(argv[5]));
	if (!strcmp(mode, "tcpserver") && argc == 4)
		return do_tcpserver(num(argv[2]), num(argv[3]));
	if (!strcmp(mode, "synfail") && argc == 5)
		return do_synfail(argv[2], num(argv[3]), num(argv[4]));
	if (!strcmp(mode, "tcpclient") && argc == 6)
		return do_tcpclient(argv[2], num(argv[3]), num(argv[4]), num(argv[5]), 0);
	if (!strcmp(mode, "tcpclient") && argc == 7 && !strcmp(argv[6], "hold"))
		return do_tcpclient(argv[2], num(argv[3]), num(argv[4]), num(argv[5]), 1);
	if (!strcmp(mode, "bwrite") && argc == 4)
		return do_bwrite(argv[2], num(argv[3]));
	if (!strcmp(mode, "mfault") && argc == 4)
		return do_mfault(argv[2], num(argv[3]));
	if (!strcmp(mode, "getppid") && argc == 3)
		return do_getppid(num(argv[2]));
	if (!strcmp(mode, "pingpong") && argc == 3)
		return do_pingpong(num(argv[2]), 0);
	if (!strcmp(mode, "pingpong") && argc == 4 && !strcmp(argv[3], "park"))
		return do_pingpong(num(argv[2]), 1);
	if (!strcmp(mode, "spin") && argc == 3)
		return do_spin(num(argv[2]), 0);
	if (!strcmp(mode, "spin") && argc == 4 && !strcmp(argv[3], "park"))
		return do_spin(num(argv[2]), 1);
	if (!strcmp(mode, "run") && argc >= 3) {
		/* a real program (a server, a client) in the pod: what the l7 tests talk to */
		const char *fds[] = {"KPOD_GATE_FD", "KPOD_READY_FD"};
		for (int i = 0; i < 2; i++) {
			const char *fd = getenv(fds[i]);
			if (fd)
				close((int)num(fd));
			unsetenv(fds[i]);
		}
		execvp(argv[2], argv + 2);
		die("execvp");
	}
	if (!strcmp(mode, "sleep") && argc == 2) {
		ready();
		for (;;)
			pause();
	}
usage:
	fprintf(stderr, "usage: kpod-workload close N | hop N R A B | turns R A B | getppid N | mfault PATH PAGES | fork N M | exec K | dwrite PATH BYTES BS | "
			"dread PATH BYTES BS | alloc BYTES | udp ADDR PORT COUNT SIZE | tcpserver PORT C | "
			"synfail ADDR PORT C | tcpclient ADDR PORT C BYTES [hold] | bwrite PATH PAGES | pingpong R [park] | spin MS [park] | sleep | run PROG ARGS...\n");
	return 2;
}
