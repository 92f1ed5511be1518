/*
 * bench.c: the Linux peer of Ferrite's benchmark suite (`make bench-linux`).
 *
 * Runs as /init (PID 1) of an initramfs on Debian's own Linux kernel, in the
 * QEMU machine scripts/qemu.sh gives Ferrite, measures the Linux equivalent
 * of every figure of Ferrite's suite, prints one line per figure, exactly
 * `bench <name> <value> <unit>`, with one info line before it saying how it
 * was measured, and powers the machine off.
 *
 * The method is Ferrite's (kernel/kcore/src/bench.rs): an operation is timed
 * in batches after untimed warm-up runs; the same loop, empty, is timed the
 * same way, interleaved; a figure is the median batch minus the median empty
 * batch, divided by the batch size, converted from TSC ticks in integer
 * arithmetic. The plans (warm-up, batches, batch size) are ubench's
 * (userland/src/bin/ubench/) and the kernel's (kernel/src/bench.rs), figure
 * by figure. The clock is the TSC, read as ubench reads it: `lfence; rdtsc`
 * before, `rdtscp; lfence` after (or `lfence; rdtsc` without rdtscp); its
 * frequency comes from CLOCK_MONOTONIC_RAW over 100 ms at the start.
 *
 * The last line is `bench-linux: done: <n> figures` when every figure was
 * measured, or `bench-linux: FAILED: <why>`; scripts/bench-linux.sh checks
 * for it.
 *
 * Build: gcc -O2 -static -pthread -Wall -Wextra -o init bench.c
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define PREFIX "bench-linux: "

__extension__ typedef unsigned __int128 u128;

/* ---------------------------------------------------------------- output */

static unsigned figures;

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(PREFIX, stdout);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static int failed;

/* Powers the machine off as init; anywhere else (a test on a host) exits. */
static void power_off(void)
{
	fflush(stdout);
	if (getpid() != 1)
		exit(failed);
	sync();
	reboot(RB_POWER_OFF);
	/* Still here: PID 1 must not return (the kernel would panic). */
	for (;;)
		pause();
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	failed = 1;
	va_start(ap, fmt);
	fputs(PREFIX "FAILED: ", stdout);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	power_off();
	__builtin_unreachable();
}

/* A time, in tenths of its unit: `bench <name> 12.3 ns`. */
static void print_tenths(const char *name, uint64_t tenths, const char *unit)
{
	printf("bench %s %llu.%llu %s\n", name, (unsigned long long)(tenths / 10),
	       (unsigned long long)(tenths % 10), unit);
	fflush(stdout);
	figures++;
}

static void print_whole(const char *name, uint64_t value, const char *unit)
{
	printf("bench %s %llu %s\n", name, (unsigned long long)value, unit);
	fflush(stdout);
	figures++;
}

static void print_na(const char *name, const char *unit, const char *why)
{
	info("%s: %s", name, why);
	printf("bench %s n/a %s\n", name, unit);
	fflush(stdout);
	figures++;
}

/* ----------------------------------------------------------------- clock */

static int has_rdtscp;

static inline uint64_t tsc_start(void)
{
	uint32_t lo, hi;
	__asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t tsc_end(void)
{
	uint32_t lo, hi;
	if (!has_rdtscp)
		return tsc_start();
	__asm__ volatile("rdtscp\n\tlfence" : "=a"(lo), "=d"(hi)::"rcx", "memory");
	return ((uint64_t)hi << 32) | lo;
}

static void detect_rdtscp(void)
{
	unsigned a, b, c, d;
	/* CPUID 8000_0001h EDX bit 27: rdtscp. */
	has_rdtscp = __get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000001 &&
		     __get_cpuid(0x80000001, &a, &b, &c, &d) && (d & (1u << 27));
}

static uint64_t ns_of(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec t;
	if (clock_gettime(id, &t) != 0)
		fail("clock_gettime(%d): %s", (int)id, strerror(errno));
	return ns_of(&t);
}

/* The TSC's frequency, against CLOCK_MONOTONIC_RAW over ~100 ms. */
static uint64_t calibrate_tsc(void)
{
	uint64_t t0 = clock_ns(CLOCK_MONOTONIC_RAW), c0 = tsc_start();
	uint64_t t1, c1;
	do {
		t1 = clock_ns(CLOCK_MONOTONIC_RAW);
		c1 = tsc_end();
	} while (t1 - t0 < 100000000u);
	return (uint64_t)((u128)(c1 - c0) * 1000000000u / (t1 - t0));
}

/* ------------------------------------------- arithmetic (kcore::bench) */

struct plan {
	unsigned warmup, samples, batch;
};

struct measured {
	uint64_t batch_ticks, overhead_ticks;
	unsigned batch;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The lower middle for an even count, so always a measured value; 0 for none. */
static uint64_t median(uint64_t *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_u64);
	return v[(n - 1) / 2];
}

static uint64_t milliticks_per_op(const struct measured *m)
{
	uint64_t net = m->batch_ticks > m->overhead_ticks ? m->batch_ticks - m->overhead_ticks : 0;
	return (uint64_t)((u128)net * 1000 / (m->batch ? m->batch : 1));
}

static uint64_t milliticks_to_tenths(uint64_t milliticks, uint64_t hz, uint64_t per_s)
{
	if (hz == 0)
		return 0;
	return (uint64_t)((u128)milliticks * per_s * 10 / ((u128)1000 * hz));
}

static uint64_t ticks_to_tenths_ns(uint64_t ticks, uint64_t hz)
{
	return milliticks_to_tenths(ticks * 1000, hz, 1000000000u);
}

static uint64_t per_second(uint64_t count, uint64_t ticks, uint64_t hz)
{
	return ticks ? (uint64_t)((u128)count * hz / ticks) : 0;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		fail("out of memory");
	return p;
}

/*
 * MEASURE(plan, result, op): kcore::bench::measure with `op` (a statement)
 * inlined, as Rust inlines the closure: warm-up runs, then `samples` times
 * a batch of `op` and a batch of nothing, interleaved. MEASURE_CHECKED also
 * runs `before` and `after` around each timed batch of `op`, outside the
 * clock reads (to check what the batch did).
 */
#define MEASURE_CHECKED(PLAN, RESULT, OP, BEFORE, AFTER)                               \
	do {                                                                           \
		const struct plan p_ = (PLAN);                                         \
		uint64_t *b_ = xmalloc(p_.samples * sizeof *b_);                       \
		uint64_t *e_ = xmalloc(p_.samples * sizeof *e_);                       \
		for (unsigned w_ = 0; w_ < p_.warmup; w_++) {                          \
			OP;                                                            \
		}                                                                      \
		for (unsigned s_ = 0; s_ < p_.samples; s_++) {                         \
			BEFORE;                                                        \
			uint64_t t_ = tsc_start();                                     \
			for (unsigned i_ = 0; i_ < p_.batch; i_++) {                   \
				OP;                                                    \
			}                                                              \
			b_[s_] = tsc_end() - t_;                                       \
			AFTER;                                                         \
			t_ = tsc_start();                                              \
			for (unsigned i_ = 0; i_ < p_.batch; i_++)                     \
				__asm__ volatile("" ::"r"(i_) : "memory");             \
			e_[s_] = tsc_end() - t_;                                       \
		}                                                                      \
		(RESULT).batch_ticks = median(b_, p_.samples);                         \
		(RESULT).overhead_ticks = median(e_, p_.samples);                      \
		(RESULT).batch = p_.batch;                                             \
		free(b_);                                                              \
		free(e_);                                                              \
	} while (0)

#define MEASURE(PLAN, RESULT, OP) MEASURE_CHECKED(PLAN, RESULT, OP, (void)0, (void)0)

/* ubench's report_measured: the info line, then the figure (divided by `divisor`). */
static void report_measured(const char *name, uint64_t hz, struct plan plan, const struct measured *m,
			    uint64_t divisor, const char *how)
{
	uint64_t tenths = milliticks_to_tenths(milliticks_per_op(m), hz, 1000000000u) / (divisor ? divisor : 1);
	info("%s: %s; %u batches of %u after %u warm-up runs; median batch %llu ticks, empty loop %llu ticks",
	     name, how, plan.samples, plan.batch, plan.warmup, (unsigned long long)m->batch_ticks,
	     (unsigned long long)m->overhead_ticks);
	print_tenths(name, tenths, "ns");
}

/* -------------------------------------------------------------- helpers */

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		fail("sched_setaffinity(cpu%d): %s", cpu, strerror(errno));
}

static pthread_t spawn(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	int e = pthread_create(&t, NULL, fn, arg);
	if (e != 0)
		fail("pthread_create: %s", strerror(e));
	return t;
}

static void *join(pthread_t t)
{
	void *ret;
	int e = pthread_join(t, &ret);
	if (e != 0)
		fail("pthread_join: %s", strerror(e));
	return ret;
}

static long futex(uint32_t *word, int op, uint32_t val)
{
	return syscall(SYS_futex, word, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

/* Blocks while *word == val (returns at once if it no longer is). */
static void futex_wait(uint32_t *word, uint32_t val)
{
	if (futex(word, FUTEX_WAIT, val) != 0 && errno != EAGAIN && errno != EINTR)
		fail("FUTEX_WAIT: %s", strerror(errno));
}

static void futex_wake(uint32_t *word)
{
	if (futex(word, FUTEX_WAKE, 1) < 0)
		fail("FUTEX_WAKE: %s", strerror(errno));
}

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

static void sleep_ns(uint64_t ns)
{
	struct timespec t = { .tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u) };
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &t, &t) == EINTR)
		;
}

/* ------------------------------------------------------------- figures */

/* null_syscall: getppid, through the syscall instruction itself (no
 * wrapper, no caching), on cpu0. */
static void null_syscall(uint64_t hz)
{
	const struct plan plan = { .warmup = 1000, .samples = 201, .batch = 100 };
	struct measured m;
	MEASURE(plan, m, {
		long ret;
		__asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_getppid) : "rcx", "r11", "memory");
	});
	report_measured("null_syscall", hz, plan, &m, 1, "getppid() through the syscall instruction on cpu0");
}

static int stop_flag;
/* How many times the partner has run (one per turn of its loop). */
static uint64_t partner_turns;

static void *yield_partner(void *arg)
{
	(void)arg;
	while (!LOAD(&stop_flag)) {
		__atomic_fetch_add(&partner_turns, 1, __ATOMIC_RELAXED);
		sched_yield();
	}
	return NULL;
}

/*
 * context_switch: two threads on cpu0 yielding to each other; one yield of
 * the measuring thread is two switches. CFS treats sched_yield as a hint:
 * while the partner's vruntime is ahead by more than the wakeup granularity
 * (a new thread starts about a slice behind; a vCPU the host held up
 * charges its time to whoever was running), a yield returns without
 * switching. So each attempt starts once 100 yields in a row have each let
 * the partner run, and counts the timed batches in which the partner ran
 * after every yield; when that is more than half of them, the median batch
 * is one of those, and the attempt stands. Up to 5 attempts.
 */
#define SETTLE_STREAK 100
#define SETTLE_LIMIT 1000000
#define SWITCH_ATTEMPTS 5
static void context_switch(uint64_t hz)
{
	STORE(&stop_flag, 0);
	STORE(&partner_turns, 0);
	/* The partner inherits this thread's affinity: cpu0. */
	pthread_t partner = spawn(yield_partner, NULL);
	const struct plan plan = { .warmup = 200, .samples = 201, .batch = 50 };
	struct measured m;
	unsigned attempt, settle, switched;
	for (attempt = 1;; attempt++) {
		unsigned streak = 0;
		for (settle = 0; streak < SETTLE_STREAK && settle < SETTLE_LIMIT; settle++) {
			uint64_t before = LOAD(&partner_turns);
			sched_yield();
			streak = LOAD(&partner_turns) != before ? streak + 1 : 0;
		}
		uint64_t turns = 0;
		switched = 0;
		MEASURE_CHECKED(plan, m, sched_yield(), turns = LOAD(&partner_turns),
				switched += LOAD(&partner_turns) - turns >= plan.batch);
		if (switched * 2 > plan.samples || attempt == SWITCH_ATTEMPTS)
			break;
	}
	STORE(&stop_flag, 1);
	join(partner);
	char how[384];
	snprintf(how, sizeof how,
		 "two threads calling sched_yield on cpu0, per switch; attempt %u of at most %u, timed after %u "
		 "settling yields; the partner ran after every yield in %u of the %u timed batches%s",
		 attempt, SWITCH_ATTEMPTS, settle, switched, plan.samples,
		 switched * 2 > plan.samples ? "" : " (WARNING: so the median batch has yields that did not switch)");
	report_measured("context_switch", hz, plan, &m, 2, how);
}

static void *return_at_once(void *arg)
{
	return arg;
}

/* thread_spawn_join: pthread_create of a thread that returns at once, then
 * pthread_join (glibc reuses the stack, as ubench does). */
static void thread_spawn_join(uint64_t hz)
{
	const struct plan plan = { .warmup = 20, .samples = 101, .batch = 10 };
	struct measured m;
	MEASURE(plan, m, join(spawn(return_at_once, NULL)));
	report_measured("thread_spawn_join", hz, plan, &m, 1,
			"pthread_create + pthread_join from cpu0 (the thread inherits the pin to cpu0)");
}

/* The futex ping-pong: `word` is 1 while the server has a request to
 * answer, 0 once it answered. */
struct pingpong {
	uint32_t word;
	int stop;
	int cpu;
};

static void *pong(void *arg)
{
	struct pingpong *pp = arg;
	if (pp->cpu >= 0)
		pin(pp->cpu);
	for (;;) {
		while (LOAD(&pp->word) == 0)
			futex_wait(&pp->word, 0);
		if (LOAD(&pp->stop))
			return NULL;
		STORE(&pp->word, 0);
		futex_wake(&pp->word);
	}
}

static void ipc_round_trip(const char *name, uint64_t hz, int server_cpu)
{
	struct pingpong pp = { .word = 0, .stop = 0, .cpu = server_cpu };
	pthread_t server = spawn(pong, &pp);
	const struct plan plan = { .warmup = 500, .samples = 201, .batch = 50 };
	struct measured m;
	MEASURE(plan, m, {
		STORE(&pp.word, 1);
		futex_wake(&pp.word);
		while (LOAD(&pp.word) == 1)
			futex_wait(&pp.word, 1);
	});
	STORE(&pp.stop, 1);
	STORE(&pp.word, 1);
	futex_wake(&pp.word);
	join(server);
	char how[160];
	snprintf(how, sizeof how,
		 "futex ping-pong round trip (word=1, FUTEX_WAKE, FUTEX_WAIT until 0) from cpu0 to a thread on cpu%d",
		 server_cpu);
	report_measured(name, hz, plan, &m, 1, how);
}

static void ipc_round_trips(uint64_t hz, int cpus)
{
	ipc_round_trip("ipc_same_cpu", hz, 0);
	/* Ferrite's ipc_same_cpu_threads (its round trip between two threads of
	 * one process, without the address-space switches of ipc_same_cpu) has
	 * the same peer: the futex ping-pong is between threads. Measured once
	 * more under that name, so that the two lists line up. */
	ipc_round_trip("ipc_same_cpu_threads", hz, 0);
	if (cpus < 2) {
		print_na("ipc_cross_cpu", "ns", "needs 2 CPUs");
		return;
	}
	ipc_round_trip("ipc_cross_cpu", hz, 1);
}

#define WAKE_SAMPLES 201
#define WAKE_WARMUP 20
#define IDLE_GAP_NS 200000u

struct wakeup {
	uint32_t wake, done;
	uint64_t woke_at;
};

static void *wakeup_waiter(void *arg)
{
	struct wakeup *w = arg;
	pin(1);
	for (uint32_t i = 0; i < WAKE_WARMUP + WAKE_SAMPLES; i++) {
		while (LOAD(&w->wake) == i)
			futex_wait(&w->wake, i);
		STORE(&w->woke_at, tsc_end());
		STORE(&w->done, i + 1);
		futex_wake(&w->done);
	}
	return NULL;
}

/* wakeup_cross_cpu: FUTEX_WAKE on cpu0 until the waiter runs on cpu1,
 * which had 200 us to go idle. */
static void wakeup_cross_cpu(uint64_t hz, int cpus)
{
	if (cpus < 2) {
		print_na("wakeup_cross_cpu", "ns", "needs 2 CPUs");
		return;
	}
	struct wakeup w = { 0, 0, 0 };
	pthread_t waiter = spawn(wakeup_waiter, &w);
	uint64_t samples[WAKE_SAMPLES];
	for (uint32_t i = 0; i < WAKE_WARMUP + WAKE_SAMPLES; i++) {
		sleep_ns(IDLE_GAP_NS);
		uint64_t sent = tsc_start();
		STORE(&w.wake, i + 1);
		futex_wake(&w.wake);
		while (LOAD(&w.done) == i)
			futex_wait(&w.done, i);
		if (i >= WAKE_WARMUP)
			samples[i - WAKE_WARMUP] = LOAD(&w.woke_at) - sent;
	}
	join(waiter);
	uint64_t ticks = median(samples, WAKE_SAMPLES);
	info("wakeup_cross_cpu: FUTEX_WAKE on cpu0 until the waiter (in FUTEX_WAIT) runs on cpu1; "
	     "median of %d wakeups after %d, %u ns apart",
	     WAKE_SAMPLES, WAKE_WARMUP, IDLE_GAP_NS);
	print_tenths("wakeup_cross_cpu", ticks_to_tenths_ns(ticks, hz), "ns");
}

#define PAGE 4096
#define TLB_SAMPLES 201
#define TLB_WARMUP 20

struct shootdown {
	uintptr_t page;
	uint32_t touched;
};

struct helper {
	struct shootdown *s;
	uint32_t bell;
	int cpu;
};

static void *shootdown_helper(void *arg)
{
	struct helper *h = arg;
	pin(h->cpu);
	uint32_t seen = 0;
	for (;;) {
		while (LOAD(&h->bell) == seen)
			futex_wait(&h->bell, seen);
		seen = LOAD(&h->bell);
		uintptr_t at = LOAD(&h->s->page);
		if (at == 0)
			return NULL;
		*(volatile char *)at = 1;
		__atomic_fetch_add(&h->s->touched, 1, __ATOMIC_ACQ_REL);
	}
}

static void ring(struct helper *h)
{
	__atomic_fetch_add(&h->bell, 1, __ATOMIC_ACQ_REL);
	futex_wake(&h->bell);
}

/* tlb_shootdown: munmap of a page that a thread on every other CPU touched
 * (each then blocks again, its CPU idle). */
static void tlb_shootdown(uint64_t hz, int cpus)
{
	struct shootdown s = { 0, 0 };
	int nh = cpus - 1;
	struct helper *helpers = xmalloc((size_t)(nh > 0 ? nh : 1) * sizeof *helpers);
	pthread_t *threads = xmalloc((size_t)(nh > 0 ? nh : 1) * sizeof *threads);
	for (int i = 0; i < nh; i++) {
		helpers[i] = (struct helper){ .s = &s, .bell = 0, .cpu = i + 1 };
		threads[i] = spawn(shootdown_helper, &helpers[i]);
	}
	uint64_t samples[TLB_SAMPLES];
	for (int i = 0; i < TLB_WARMUP + TLB_SAMPLES; i++) {
		char *at = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (at == MAP_FAILED)
			fail("mmap: %s", strerror(errno));
		*(volatile char *)at = 1;
		STORE(&s.touched, 0);
		STORE(&s.page, (uintptr_t)at);
		for (int h = 0; h < nh; h++)
			ring(&helpers[h]);
		while (LOAD(&s.touched) < (uint32_t)nh)
			__builtin_ia32_pause();
		uint64_t start = tsc_start();
		int r = munmap(at, PAGE);
		uint64_t end = tsc_end();
		if (r != 0)
			fail("munmap: %s", strerror(errno));
		if (i >= TLB_WARMUP)
			samples[i - TLB_WARMUP] = end - start;
	}
	STORE(&s.page, 0);
	for (int h = 0; h < nh; h++)
		ring(&helpers[h]);
	for (int h = 0; h < nh; h++)
		join(threads[h]);
	free(helpers);
	free(threads);
	uint64_t ticks = median(samples, TLB_SAMPLES);
	info("tlb_shootdown: munmap of a page touched on all %d CPUs (the others idle, blocked in FUTEX_WAIT); "
	     "median of %d after %d",
	     cpus, TLB_SAMPLES, TLB_WARMUP);
	print_tenths("tlb_shootdown", ticks_to_tenths_ns(ticks, hz), "ns");
}

#define ROUNDS 3
#define ROUND_NS 200000000u

struct round {
	int go, stop;
	uint32_t ready;
};

struct yielder {
	struct round *r;
	int cpu;
	uint64_t yields;
};

static void *yielder(void *arg)
{
	struct yielder *y = arg;
	pin(y->cpu);
	__atomic_fetch_add(&y->r->ready, 1, __ATOMIC_ACQ_REL);
	while (!LOAD(&y->r->go))
		sched_yield();
	uint64_t yields = 0;
	while (!__atomic_load_n(&y->r->stop, __ATOMIC_RELAXED)) {
		sched_yield();
		yields++;
	}
	y->yields = yields;
	return NULL;
}

/* One round: n pinned threads yield from a common start to a common stop;
 * their total yields per second. */
static uint64_t yield_round(int n, uint64_t hz)
{
	struct round r = { 0, 0, 0 };
	struct yielder *ys = xmalloc((size_t)n * sizeof *ys);
	pthread_t *ts = xmalloc((size_t)n * sizeof *ts);
	for (int i = 0; i < n; i++) {
		ys[i] = (struct yielder){ .r = &r, .cpu = i, .yields = 0 };
		ts[i] = spawn(yielder, &ys[i]);
	}
	while (LOAD(&r.ready) < (uint32_t)n)
		sched_yield();
	uint64_t start = tsc_start();
	STORE(&r.go, 1);
	sleep_ns(ROUND_NS);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	uint64_t elapsed = tsc_end() - start;
	uint64_t total = 0;
	for (int i = 0; i < n; i++) {
		join(ts[i]);
		total += ys[i].yields;
	}
	free(ys);
	free(ts);
	return per_second(total, elapsed, hz);
}

static void yield_throughput(uint64_t hz, int cpus)
{
	for (int n = 1; n <= cpus; n *= 2) {
		uint64_t rates[ROUNDS];
		for (int i = 0; i < ROUNDS; i++)
			rates[i] = yield_round(n, hz);
		uint64_t rate = median(rates, ROUNDS);
		char name[64];
		snprintf(name, sizeof name, "yield_throughput_%dcpu", n);
		info("%s: %d threads, one pinned to each of cpus 0..%d, calling sched_yield; median of %d rounds of %u ms",
		     name, n, n, ROUNDS, ROUND_NS / 1000000);
		print_whole(name, rate, "per_s");
	}
}

/* boot_to_init: CLOCK_BOOTTIME read first thing in main. */
static void boot_to_init(uint64_t boot_ns)
{
	info("boot_to_init: CLOCK_BOOTTIME at the start of /init's main(); Linux's clock starts at 0 at its TSC "
	     "setup in setup_arch (printk time 0), so the firmware, the loader, the decompressor and the "
	     "earliest setup are not counted (Ferrite counts from its first instruction)");
	print_tenths("boot_to_init", boot_ns / 100, "us");
}

/* The whole kernel log (klogctl(SYSLOG_ACTION_READ_ALL)), NUL-terminated; NULL if unreadable. */
static char *kernel_log(void)
{
	int size = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	if (size <= 0)
		return NULL;
	char *buf = xmalloc((size_t)size + 1);
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, size);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* The line of `log` containing `what` (the last one if `last`), copied into
 * `line`; its printk timestamp in microseconds; -1 if absent. */
static long long find_stamp(const char *log, const char *what, int last, char *line, size_t cap)
{
	const char *hit = NULL;
	for (const char *p = log; (p = strstr(p, what)) != NULL; p += strlen(what)) {
		hit = p;
		if (!last)
			break;
	}
	if (!hit)
		return -1;
	const char *start = hit;
	while (start > log && start[-1] != '\n')
		start--;
	const char *end = strchr(hit, '\n');
	size_t len = end ? (size_t)(end - start) : strlen(start);
	if (len >= cap)
		len = cap - 1;
	memcpy(line, start, len);
	line[len] = '\0';
	/* "<6>[    0.123456] smp: ..." */
	const char *bracket = strchr(start, '[');
	unsigned long long sec, usec;
	if (!bracket || bracket > hit || sscanf(bracket + 1, " %llu.%6llu]", &sec, &usec) != 2)
		return -1;
	return (long long)(sec * 1000000u + usec);
}

/* ap_bringup: the kernel log's timestamps from "smp: Bringing up secondary
 * CPUs" to "smp: Brought up". */
static int ap_bringup(const char *log, int cpus)
{
	if (cpus < 2) {
		print_na("ap_bringup", "us", "needs 2 CPUs");
		return 1;
	}
	char from[256], to[256];
	long long t0 = log ? find_stamp(log, "smp: Bringing up secondary CPUs", 0, from, sizeof from) : -1;
	long long t1 = log ? find_stamp(log, "smp: Brought up", 0, to, sizeof to) : -1;
	if (t0 < 0 || t1 < t0) {
		print_na("ap_bringup", "us", "the smp: lines or their timestamps are not in the kernel log");
		return 0;
	}
	info("ap_bringup: printk timestamps (1 us resolution) of the kernel log lines '%s' and '%s'", from, to);
	print_tenths("ap_bringup", (uint64_t)(t1 - t0) * 10, "us");
	return 1;
}

static void ipi_roundtrip(void)
{
	print_na("ipi_roundtrip", "ns",
		 "not observable from Linux user space (no system call sends an IPI and waits for its handler; "
		 "Ferrite measures it in its kernel)");
}

/* -------------------------------------------------------------- main */

/* The console: the kernel opens /dev/console as init's fds 0-2 when the
 * initramfs has it (ours, and the kernel's built-in one, do). */
static const char *check_console(void)
{
	struct stat st;
	if (fstat(1, &st) == 0)
		return S_ISCHR(st.st_mode) && major(st.st_rdev) == 5 && minor(st.st_rdev) == 1
			       ? "stdout is /dev/console (char 5:1)"
			       : "stdout is open but is not /dev/console";
	int fd = open("/dev/console", O_RDWR);
	if (fd < 0)
		power_off(); /* nowhere to say anything */
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
	return "stdout was closed: opened /dev/console";
}

int main(void)
{
	uint64_t boot_ns = clock_ns(CLOCK_BOOTTIME);
	const char *console = check_console();
	setvbuf(stdout, NULL, _IOLBF, 0);

	struct utsname u;
	uname(&u);
	info("Linux %s %s %s; /init is pid %d; %s", u.release, u.version, u.machine, (int)getpid(), console);

	cpu_set_t online;
	if (sched_getaffinity(0, sizeof online, &online) != 0)
		fail("sched_getaffinity: %s", strerror(errno));
	int cpus = CPU_COUNT(&online);
	for (int c = 0; c < cpus; c++)
		if (!CPU_ISSET(c, &online))
			fail("the online CPUs are not 0..%d", cpus - 1);

	char *log = kernel_log();
	if (!log)
		info("cannot read the kernel log: %s", strerror(errno));
	char line[256];
	if (log && find_stamp(log, "clocksource: Switched to clocksource", 1, line, sizeof line) >= 0)
		info("kernel log: %s", line);
	if (log && find_stamp(log, "TSC unstable", 1, line, sizeof line) >= 0)
		info("kernel log: %s", line);

	detect_rdtscp();
	pin(0);
	uint64_t hz = calibrate_tsc();
	info("%d CPUs, TSC at %llu Hz (against CLOCK_MONOTONIC_RAW over 100 ms), clock reads: %s", cpus,
	     (unsigned long long)hz, has_rdtscp ? "lfence;rdtsc / rdtscp;lfence" : "lfence;rdtsc");
	if (hz == 0)
		fail("the TSC does not advance");

	/* ubench's order, then the kernel's figures. */
	null_syscall(hz);
	context_switch(hz);
	thread_spawn_join(hz);
	ipc_round_trips(hz, cpus);
	wakeup_cross_cpu(hz, cpus);
	tlb_shootdown(hz, cpus);
	yield_throughput(hz, cpus);
	boot_to_init(boot_ns);
	int ok = ap_bringup(log, cpus);
	ipi_roundtrip();
	free(log);

	if (ok)
		info("done: %u figures", figures);
	else
		fail("ap_bringup could not be measured");
	power_off();
}
