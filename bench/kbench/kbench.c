// kbench: the micro-benchmarks of `make bench` (see bench/README.md). Built at bench time
// with `gcc -static -O2` so that a run makes no system calls but the ones it measures (no
// dynamic loader).
//
// Every timed mode runs ROUNDS rounds of OPS operations and prints one line
//   RESULT mode=<mode> ops=<OPS> rounds=<ROUNDS> min_ns=<x> med_ns=<y> ctxsw_per_op=<z>
// where min_ns and med_ns are the minimum and the median over rounds of the mean time of one
// operation in a round. The minimum is the sample least disturbed by other load.
//
// Before anything else kbench moves itself into the cgroups listed in $KBENCH_CGROUPS
// (colon-separated cgroup.procs files), so that a benchmark runs inside a fake pod, and pins
// itself (and so its children) to the CPU in $KBENCH_CPU if set.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
	fprintf(stderr, "kbench: %s: %s\n", what, strerror(errno));
	exit(111);
}

static long num(const char *s) {
	char *end;
	long v = strtol(s, &end, 0);
	if (*s == 0 || *end != 0 || v <= 0) {
		fprintf(stderr, "kbench: bad number %s\n", s);
		exit(112);
	}
	return v;
}

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

// join_cgroups writes our pid into every cgroup.procs file of $KBENCH_CGROUPS.
static void join_cgroups(void) {
	const char *list = getenv("KBENCH_CGROUPS");
	if (!list || !*list)
		return;
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%d", getpid());
	char *copy = strdup(list), *save = NULL;
	for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		int fd = open(p, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, pid, n) != n)
			die(p);
		close(fd);
	}
	free(copy);
}

// pin_cpu pins this process to the CPU in $KBENCH_CPU.
static void pin_cpu(void) {
	const char *s = getenv("KBENCH_CPU");
	if (!s || !*s)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET((int)strtol(s, NULL, 10), &set);
	if (sched_setaffinity(0, sizeof set, &set) < 0)
		die("sched_setaffinity");
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static long ctxsw(int who) {
	struct rusage ru;
	getrusage(who, &ru);
	return ru.ru_nvcsw + ru.ru_nivcsw;
}

// report prints the RESULT line from per-round ns/op samples.
static void report(const char *mode, long ops, long rounds, double *per_op, double ctx_per_op) {
	qsort(per_op, rounds, sizeof *per_op, cmp_double);
	double med = rounds % 2 ? per_op[rounds / 2] : (per_op[rounds / 2 - 1] + per_op[rounds / 2]) / 2;
	printf("RESULT mode=%s ops=%ld rounds=%ld min_ns=%.1f med_ns=%.1f ctxsw_per_op=%.3f\n", mode, ops, rounds,
	       per_op[0], med, ctx_per_op);
	fflush(stdout);
}

// getppid: the null system call (raw syscall, so libc cannot cache it).
static void b_getppid(long ops, long rounds) {
	double *r = calloc(rounds, sizeof *r);
	for (long k = 0; k < rounds; k++) {
		uint64_t t0 = now_ns();
		for (long i = 0; i < ops; i++)
			syscall(SYS_getppid);
		r[k] = (double)(now_ns() - t0) / ops;
	}
	report("getppid", ops, rounds, r, 0);
}

// pingpong: one-byte round trips over two pipes between this process and a child; every
// round trip is two wakeups and (at least) two context switches on each side.
static void b_pingpong(long ops, long rounds) {
	int a[2], b[2];
	if (pipe(a) < 0 || pipe(b) < 0)
		die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	char c = 'x';
	if (pid == 0) {
		close(a[1]);
		close(b[0]);
		for (;;) {
			ssize_t n = read(a[0], &c, 1);
			if (n == 0)
				_exit(0);
			if (n != 1 || write(b[1], &c, 1) != 1)
				_exit(1);
		}
	}
	close(a[0]);
	close(b[1]);
	double *r = calloc(rounds, sizeof *r);
	long cs0 = ctxsw(RUSAGE_SELF);
	for (long k = 0; k < rounds; k++) {
		uint64_t t0 = now_ns();
		for (long i = 0; i < ops; i++)
			if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
				die("pingpong");
		r[k] = (double)(now_ns() - t0) / ops;
	}
	long cs = ctxsw(RUSAGE_SELF) - cs0;
	close(a[1]);
	waitpid(pid, NULL, 0);
	cs += ctxsw(RUSAGE_CHILDREN);
	report("pingpong", ops, rounds, r, (double)cs / (ops * rounds));
}

static int read_full(int fd, char *buf, size_t bufsz, size_t want) {
	while (want > 0) {
		ssize_t n = read(fd, buf, want < bufsz ? want : bufsz);
		if (n <= 0)
			return -1;
		want -= n;
	}
	return 0;
}

// loopback_socket binds a TCP socket to a free port of 127.0.0.1 (its address in *sa) and,
// with backlog > 0, listens on it.
static int loopback_socket(struct sockaddr_in *sa, int backlog) {
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	*sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof *sa;
	if (ls < 0 || bind(ls, (struct sockaddr *)sa, sizeof *sa) < 0 || (backlog > 0 && listen(ls, backlog) < 0) ||
	    getsockname(ls, (struct sockaddr *)sa, &sl) < 0)
		die("bind/listen on 127.0.0.1");
	return ls;
}

// tcp: a TCP stream over 127.0.0.1. The parent writes OPS writes of SIZE bytes per round; the
// child reads them all and acknowledges the round with one byte, which ends the round.
static void b_tcp(long ops, long rounds, long size) {
	struct sockaddr_in sa;
	int ls = loopback_socket(&sa, 1);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	char *buf = calloc(1, size);
	if (pid == 0) {
		int s = accept(ls, NULL, NULL);
		if (s < 0)
			_exit(1);
		char ack = 'a';
		for (long k = 0; k < rounds; k++)
			if (read_full(s, buf, size, (size_t)ops * size) < 0 || write(s, &ack, 1) != 1)
				_exit(2);
		_exit(0);
	}
	close(ls);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect");
	double *r = calloc(rounds, sizeof *r);
	for (long k = 0; k < rounds; k++) {
		uint64_t t0 = now_ns();
		for (long i = 0; i < ops; i++) {
			ssize_t left = size;
			while (left > 0) {
				ssize_t n = write(s, buf + (size - left), left);
				if (n <= 0)
					die("tcp write");
				left -= n;
			}
		}
		char ack;
		if (read(s, &ack, 1) != 1)
			die("tcp ack");
		r[k] = (double)(now_ns() - t0) / ops;
	}
	close(s);
	waitpid(pid, NULL, 0);
	report("tcp", ops, rounds, r, 0);
}

// http: HTTP/1.1 keep-alive request/response exchanges over one 127.0.0.1 TCP connection
// between this process (the client) and a child (the server); one operation is one GET
// written and its 200 response read, each in one system call on each side (a request and a
// response the l7 family parses).
static const char http_req[] = "GET /kbench HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: kbench\r\n\r\n";
static const char http_resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";

static void b_http(long ops, long rounds) {
	struct sockaddr_in sa;
	int ls = loopback_socket(&sa, 1);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	char buf[256];
	const size_t qlen = sizeof http_req - 1, rlen = sizeof http_resp - 1;
	int one = 1;
	if (pid == 0) {
		int s = accept(ls, NULL, NULL);
		if (s < 0)
			_exit(1);
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		for (;;) {
			ssize_t n = read(s, buf, qlen);
			if (n == 0)
				_exit(0);
			if (n != (ssize_t)qlen && (n <= 0 || read_full(s, buf, sizeof buf, qlen - n) < 0))
				_exit(2);
			if (write(s, http_resp, rlen) != (ssize_t)rlen)
				_exit(3);
		}
	}
	close(ls);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect");
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	double *r = calloc(rounds, sizeof *r);
	for (long k = 0; k < rounds; k++) {
		uint64_t t0 = now_ns();
		for (long i = 0; i < ops; i++) {
			if (write(s, http_req, qlen) != (ssize_t)qlen)
				die("http write");
			ssize_t n = read(s, buf, rlen);
			if (n != (ssize_t)rlen && (n <= 0 || read_full(s, buf, sizeof buf, rlen - n) < 0))
				die("http read");
		}
		r[k] = (double)(now_ns() - t0) / ops;
	}
	close(s);
	waitpid(pid, NULL, 0);
	report("http", ops, rounds, r, 0);
}

// forkexec: fork, exec this (static) binary as "kbench true", wait.
static void b_forkexec(long ops, long rounds) {
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0)
		die("readlink");
	self[n] = 0;
	char *argv[] = {"kbench", "true", NULL};
	char *envp[] = {NULL};
	double *r = calloc(rounds, sizeof *r);
	for (long k = 0; k < rounds; k++) {
		uint64_t t0 = now_ns();
		for (long i = 0; i < ops; i++) {
			pid_t pid = fork();
			if (pid < 0)
				die("fork");
			if (pid == 0) {
				execve(self, argv, envp);
				_exit(127);
			}
			int st;
			if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
				die("forkexec child");
		}
		r[k] = (double)(now_ns() - t0) / ops;
	}
	report("forkexec", ops, rounds, r, 0);
}

// dread: O_DIRECT reads of BS bytes from a block device or a regular file, sequential,
// wrapping at its end.
static void b_dread(const char *dev, long ops, long rounds, long bs) {
	int fd = open(dev, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		die(dev);
	uint64_t size;
	struct stat st;
	if (fstat(fd, &st) < 0)
		die("fstat");
	if (S_ISREG(st.st_mode))
		size = st.st_size;
	else if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		die("BLKGETSIZE64");
	void *buf;
	if (posix_memalign(&buf, 4096, bs))
		die("posix_memalign");
	uint64_t off = 0;
	double *r = calloc(rounds, sizeof *r);
	for (long k = 0; k < rounds; k++) {
		uint64_t t0 = now_ns();
		for (long i = 0; i < ops; i++) {
			if (off + bs > size)
				off = 0;
			if (pread(fd, buf, bs, off) != bs)
				die("pread");
			off += bs;
		}
		r[k] = (double)(now_ns() - t0) / ops;
	}
	report("dread", ops, rounds, r, 0);
}

// bufwrite: buffered 4 KiB writes into FILE, each to a page not yet in the page cache (a new
// offset of a file truncated to zero before every round, outside the timed part): per write
// the kernel adds a folio to the page cache and dirties it (and its buffer heads on ext4).
// The truncation drops the dirty pages before writeback would write them, so nothing reaches
// the disk.
static void b_bufwrite(const char *path, long ops, long rounds) {
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		die(path);
	char buf[4096];
	memset(buf, 'w', sizeof buf);
	double *r = calloc(rounds, sizeof *r);
	for (long k = 0; k < rounds; k++) {
		if (ftruncate(fd, 0) < 0)
			die("ftruncate");
		uint64_t t0 = now_ns();
		for (long i = 0; i < ops; i++)
			if (pwrite(fd, buf, sizeof buf, (off_t)i * sizeof buf) != sizeof buf)
				die("pwrite");
		r[k] = (double)(now_ns() - t0) / ops;
	}
	if (ftruncate(fd, 0) < 0)
		die("ftruncate");
	close(fd);
	report("bufwrite", ops, rounds, r, 0);
}

// tcprst: connect() to a port of 127.0.0.1 nothing listens on; the kernel drops the SYN (no
// socket: kfree_skb with SKB_DROP_REASON_NO_SOCKET) and answers with a reset. One operation:
// socket, connect (ECONNREFUSED), close.
static void b_tcprst(long ops, long rounds) {
	struct sockaddr_in sa;
	close(loopback_socket(&sa, 0)); // the port is free again and nothing listens on it
	double *r = calloc(rounds, sizeof *r);
	for (long k = 0; k < rounds; k++) {
		uint64_t t0 = now_ns();
		for (long i = 0; i < ops; i++) {
			int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (s < 0)
				die("socket");
			if (connect(s, (struct sockaddr *)&sa, sizeof sa) == 0 || errno != ECONNREFUSED)
				die("tcprst connect (expected ECONNREFUSED)");
			close(s);
		}
		r[k] = (double)(now_ns() - t0) / ops;
	}
	report("tcprst", ops, rounds, r, 0);
}

// conns: opens N TCP connections over 127.0.0.1 (2N established sockets), prints "ready N"
// and holds them until stdin closes.
static void b_conns(long n) {
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit");
	if (rl.rlim_cur < (rlim_t)(2 * n + 64)) {
		rl.rlim_cur = 2 * n + 64;
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			die("setrlimit (2N + 64 descriptors)");
	}
	struct sockaddr_in sa;
	int ls = loopback_socket(&sa, 4096);
	for (long i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof sa) < 0)
			die("connect");
		if (accept4(ls, NULL, NULL, SOCK_CLOEXEC) < 0)
			die("accept");
	}
	printf("ready %ld\n", n);
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0)
		;
}

// oomkill: forks a child that joins the cgroups in CGROUPS (colon-separated cgroup.procs
// files of a memory-limited container) and touches memory until the kernel's memory cgroup
// OOM killer kills it; one operation is one kill, waited for.
static void b_oomkill(const char *cgroups, long ops, long rounds) {
	double *r = calloc(rounds, sizeof *r);
	for (long k = 0; k < rounds; k++) {
		uint64_t t0 = now_ns();
		for (long i = 0; i < ops; i++) {
			pid_t pid = fork();
			if (pid < 0)
				die("fork");
			if (pid == 0) {
				setenv("KBENCH_CGROUPS", cgroups, 1);
				join_cgroups();
				for (;;) {
					char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
					if (p == MAP_FAILED)
						_exit(3);
					for (int j = 0; j < 1 << 20; j += 4096)
						p[j] = 1;
				}
			}
			int st;
			if (waitpid(pid, &st, 0) < 0 || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
				fprintf(stderr, "kbench: oomkill child was not killed by the OOM killer (status %#x)\n", st);
				exit(113);
			}
		}
		r[k] = (double)(now_ns() - t0) / ops;
	}
	report("oomkill", ops, rounds, r, 0);
}

// badclose: N close(-1) calls, each failing with EBADF (a tracked system call with a known
// count and a known number of errors, for checking that a syscall counter is exact).
static void b_badclose(long n) {
	for (long i = 0; i < n; i++)
		if (syscall(SYS_close, -1) != -1 || errno != EBADF)
			die("close(-1) did not fail with EBADF");
	printf("closed %ld\n", n);
}

// sleepers: reads lines from stdin, each a colon-separated list of cgroup.procs files of one
// container, and forks one sleeping child per line that joins them and, as a pod's sandbox
// does, a network namespace of its own (with "netns"). Prints "ready N" once all have joined,
// then waits for stdin to close (or SIGTERM) and kills them.
static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static void b_sleepers(int netns) {
	int ready[2];
	if (pipe(ready) < 0)
		die("pipe");
	pid_t parent = getpid();
	long n = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	pid_t *kids = NULL;
	while ((len = getline(&line, &cap, stdin)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = 0;
		if (len == 0)
			break; // an empty line ends the list
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(0);
			setenv("KBENCH_CGROUPS", line, 1);
			join_cgroups();
			if (netns && unshare(CLONE_NEWNET) < 0)
				die("unshare netns");
			char c = 'r';
			if (write(ready[1], &c, 1) != 1)
				_exit(1);
			for (;;)
				pause();
		}
		kids = realloc(kids, (n + 1) * sizeof *kids);
		kids[n++] = pid;
	}
	for (long i = 0; i < n; i++) {
		char c;
		if (read(ready[0], &c, 1) != 1)
			die("sleepers ready");
	}
	printf("ready %ld\n", n);
	fflush(stdout);
	signal(SIGTERM, on_term);
	char c;
	while (!stop && read(0, &c, 1) > 0)
		;
	for (long i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	for (long i = 0; i < n; i++)
		waitpid(kids[i], NULL, 0);
}

int main(int argc, char **argv) {
	if (argc < 2)
		goto usage;
	const char *m = argv[1];
	if (!strcmp(m, "true"))
		return 0;
	join_cgroups();
	pin_cpu();
	if (!strcmp(m, "getppid") && argc == 4)
		b_getppid(num(argv[2]), num(argv[3]));
	else if (!strcmp(m, "pingpong") && argc == 4)
		b_pingpong(num(argv[2]), num(argv[3]));
	else if (!strcmp(m, "tcp") && argc == 5)
		b_tcp(num(argv[2]), num(argv[3]), num(argv[4]));
	else if (!strcmp(m, "http") && argc == 4)
		b_http(num(argv[2]), num(argv[3]));
	else if (!strcmp(m, "forkexec") && argc == 4)
		b_forkexec(num(argv[2]), num(argv[3]));
	else if (!strcmp(m, "dread") && argc == 6)
		b_dread(argv[2], num(argv[3]), num(argv[4]), num(argv[5]));
	else if (!strcmp(m, "bufwrite") && argc == 5)
		b_bufwrite(argv[2], num(argv[3]), num(argv[4]));
	else if (!strcmp(m, "tcprst") && argc == 4)
		b_tcprst(num(argv[2]), num(argv[3]));
	else if (!strcmp(m, "badclose") && argc == 3)
		b_badclose(num(argv[2]));
	else if (!strcmp(m, "conns") && argc == 3)
		b_conns(num(argv[2]));
	else if (!strcmp(m, "oomkill") && argc == 5)
		b_oomkill(argv[2], num(argv[3]), num(argv[4]));
	else if (!strcmp(m, "sleepers") && (argc == 2 || (argc == 3 && !strcmp(argv[2], "netns"))))
		b_sleepers(argc == 3);
	else if (!strcmp(m, "exec") && argc >= 3) {
		execvp(argv[2], argv + 2);
		die(argv[2]);
	} else
		goto usage;
	return 0;
usage:
	fprintf(stderr, "usage: kbench getppid OPS ROUNDS | pingpong OPS ROUNDS | tcp OPS ROUNDS SIZE | "
			"http OPS ROUNDS | forkexec OPS ROUNDS | dread DEV|FILE OPS ROUNDS BS | bufwrite FILE OPS ROUNDS | tcprst OPS ROUNDS | "
			"oomkill CGROUPS OPS ROUNDS | conns N | badclose N | sleepers [netns] | exec CMD ARGS... | true\n");
	return 2;
}
