/* SPDX-License-Identifier: MIT */
/*
 * backend - every backend function of the device through the runtime API,
 * each checked against what the host expects.  One line per check:
 *   "<name>: ok" or "<name>: FAILED (why)"
 * (memset, memcpy, memcpy_async, events, event_reset, stream_wait_event,
 * membar, host_func, fence_reset, encode, decode, attention,
 * attention_causal, bad_token).
 *
 *   backend [-d DEV]
 */
#include <math.h>
#include <pthread.h>

#include "common.h"

static const char usage[] = "backend [-d DEV]";

static int failures;

static void report(const char *name, const char *why)
{
	if (why) {
		printf("%s: FAILED (%s)\n", name, why);
		failures++;
	} else {
		printf("%s: ok\n", name);
	}
	fflush(stdout);
}

/* ---- memset, memcpy ------------------------------------------------------ */

static void check_memset(void)
{
	unsigned char host[4096];
	unsigned words[256];
	void *d;
	aiStream_t s;
	const char *why = NULL;

	CHECK(aiMalloc(&d, sizeof(host)));
	CHECK(aiMemset(d, 0xab, sizeof(host)));
	CHECK(aiMemcpy(host, d, sizeof(host), aiMemcpyDeviceToHost));
	for (size_t i = 0; i < sizeof(host) && !why; i++)
		if (host[i] != 0xab)
			why = "aiMemset";
	CHECK(aiMemsetD32(d, 0xdeadbeef, 256));
	CHECK(aiMemcpy(words, d, sizeof(words), aiMemcpyDeviceToHost));
	for (int i = 0; i < 256 && !why; i++)
		if (words[i] != 0xdeadbeef)
			why = "aiMemsetD32";
	CHECK(aiStreamCreate(&s));
	CHECK(aiMemsetAsync((char *)d + 1, 0x11, 10, s));
	CHECK(aiStreamSynchronize(s));
	CHECK(aiMemcpy(host, d, 16, aiMemcpyDeviceToHost));
	if (!why && (host[0] != 0xef || host[1] != 0x11 || host[10] != 0x11 ||
		     host[11] != 0xde))
		why = "aiMemsetAsync";
	CHECK(aiStreamDestroy(s));
	CHECK(aiFree(d));
	report("memset", why);
}

static void check_memcpy(void)
{
	size_t n = 1 << 16;
	unsigned char *a = xmalloc(n), *b = xmalloc(n);
	void *d1, *d2;
	aiStream_t s;

	fill_pattern(a, n, 3);
	CHECK(aiMalloc(&d1, n));
	CHECK(aiMalloc(&d2, n));
	CHECK(aiMemcpy(d1, a, n, aiMemcpyHostToDevice));
	CHECK(aiMemcpy(d2, d1, n, aiMemcpyDeviceToDevice));
	memset(b, 0, n);
	CHECK(aiMemcpy(b, d2, n, aiMemcpyDeviceToHost));
	report("memcpy", memcmp(a, b, n) ? "round trip differs" : NULL);

	fill_pattern(a, n, 4);
	memset(b, 0, n);
	CHECK(aiStreamCreate(&s));
	CHECK(aiMemcpyAsync(d1, a, n, aiMemcpyHostToDevice, s));
	CHECK(aiMemcpyAsync(d2, d1, n, aiMemcpyDeviceToDevice, s));
	CHECK(aiMemcpyAsync(b, d2, n, aiMemcpyDeviceToHost, s));
	CHECK(aiStreamSynchronize(s));
	report("memcpy_async", memcmp(a, b, n) ? "round trip differs" : NULL);
	CHECK(aiStreamDestroy(s));
	CHECK(aiFree(d1));
	CHECK(aiFree(d2));
	free(a);
	free(b);
}

/* ---- events -------------------------------------------------------------- */

static void check_events(aiFunction_t vecadd)
{
	aiEvent_t e0, e1;
	aiStream_t s;
	unsigned long long t0 = 0, t1 = 0;
	float ms = -1;
	void *a, *b, *c;
	size_t n = 1 << 16;
	const char *why = NULL;

	CHECK(aiEventCreate(&e0));
	CHECK(aiEventCreate(&e1));
	CHECK(aiStreamCreate(&s));
	CHECK(aiMalloc(&a, n * 4));
	CHECK(aiMalloc(&b, n * 4));
	CHECK(aiMalloc(&c, n * 4));
	if (aiEventQuery(e0) != aiErrorNotReady)
		why = "a new event is not 'not ready'";
	if (!why && aiEventGetTimestamp(&t0, e0) != aiErrorNotReady)
		why = "timestamp of an unrecorded event";
	CHECK(aiEventRecord(e0, s));
	CHECK(launch_vecadd(vecadd, a, b, c, n, s));
	CHECK(aiEventRecord(e1, s));
	CHECK(aiEventSynchronize(e1));
	if (!why && (aiEventQuery(e0) != aiSuccess || aiEventQuery(e1) != aiSuccess))
		why = "recorded events not signalled";
	CHECK(aiEventGetTimestamp(&t0, e0));
	CHECK(aiEventGetTimestamp(&t1, e1));
	CHECK(aiEventElapsedTime(&ms, e0, e1));
	if (!why && (t1 <= t0 || ms <= 0))
		why = "the kernel took no device time";
	report("events", why);

	/* reset: back to not signalled; synchronizing on it does not wait */
	why = NULL;
	CHECK(aiEventReset(e1, s));
	CHECK(aiStreamSynchronize(s));
	if (aiEventQuery(e1) != aiErrorNotReady)
		why = "still signalled after the reset";
	if (!why && aiEventSynchronize(e1) != aiSuccess)
		why = "aiEventSynchronize of a reset event";
	CHECK(aiEventRecord(e1, s));
	CHECK(aiEventSynchronize(e1));
	if (!why && aiEventQuery(e1) != aiSuccess)
		why = "record after reset not signalled";
	report("event_reset", why);

	CHECK(aiFree(a));
	CHECK(aiFree(b));
	CHECK(aiFree(c));
	CHECK(aiStreamDestroy(s));
	CHECK(aiEventDestroy(e0));
	CHECK(aiEventDestroy(e1));
}

/* ---- host functions (notify), stream wait, membar ------------------------- */

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int open;
	int ran;
	const unsigned *watch;	/* host view of a mapped buffer */
	float *write;
	size_t n;
	int saw_kernel;
};

static void gate_fn(void *arg)
{
	struct gate *g = arg;

	pthread_mutex_lock(&g->lock);
	g->ran++;
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void open_gate(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* Runs between a fill kernel and a vecadd on the same stream: checks the
 * fill is visible, then writes the vecadd's input. */
static void between_fn(void *arg)
{
	struct gate *g = arg;

	g->saw_kernel = 1;
	for (size_t i = 0; i < g->n; i++)
		if (g->watch[i] != 0x40000000u)		/* 2.0f */
			g->saw_kernel = 0;
	for (size_t i = 0; i < g->n; i++)
		g->write[i] = (float)i;
	__atomic_store_n(&g->ran, g->ran + 1, __ATOMIC_RELEASE);
}

static void check_host_func(aiFunction_t vecadd, aiFunction_t fill)
{
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			  0, 0, NULL, NULL, 0, 0 };
	size_t n = 4096;
	void *dm, *db, *dc;
	float *hm, *hc = xmalloc(n * 4);
	float ones[4096];
	unsigned value = 0x40000000u, n32 = (unsigned)n;
	void *fill_args[] = { &dm, &value, &n32 };
	aiStream_t s;
	const char *why = NULL;

	CHECK(aiStreamCreate(&s));
	CHECK(aiMallocMapped(&dm, (void **)&hm, n * 4));
	CHECK(aiMalloc(&db, n * 4));
	CHECK(aiMalloc(&dc, n * 4));
	for (size_t i = 0; i < n; i++)
		ones[i] = 1.0f;
	CHECK(aiMemcpy(db, ones, n * 4, aiMemcpyHostToDevice));
	g.watch = (const unsigned *)hm;
	g.write = hm;
	g.n = n;
	CHECK(aiLaunchKernel(fill, (aiDim3){ 16, 1, 1 }, (aiDim3){ 256, 1, 1 },
			     fill_args, 0, s));
	CHECK(aiLaunchHostFunc(s, between_fn, &g));
	CHECK(launch_vecadd(vecadd, dm, db, dc, n, s));
	CHECK(aiStreamSynchronize(s));
	CHECK(aiMemcpy(hc, dc, n * 4, aiMemcpyDeviceToHost));
	if (!g.saw_kernel)
		why = "the host function ran before the kernel before it";
	for (size_t i = 0; i < n && !why; i++)
		if (hc[i] != (float)i + 1.0f)
			why = "the kernel after the host function did not see its writes";
	report("host_func", why);

	/* stream_wait_event: s2 waits for an event s records behind a closed
	 * gate; nothing of s2 may run before the gate opens */
	{
		aiStream_t s2;
		aiEvent_t ev;
		struct gate g2 = { PTHREAD_MUTEX_INITIALIZER,
				   PTHREAD_COND_INITIALIZER, 0, 0, NULL, NULL,
				   0, 0 };
		unsigned marker = 0;

		why = NULL;
		CHECK(aiStreamCreate(&s2));
		CHECK(aiEventCreate(&ev));
		CHECK(aiMemsetD32(dm, 0, n));
		CHECK(aiLaunchHostFunc(s, gate_fn, &g2));
		CHECK(aiEventRecord(ev, s));
		CHECK(aiStreamWaitEvent(s2, ev));
		value = 7;
		CHECK(aiLaunchKernel(fill, (aiDim3){ 1, 1, 1 },
				     (aiDim3){ 32, 1, 1 }, fill_args, 0, s2));
		if (aiStreamQuery(s2) != aiErrorNotReady)
			why = "the waiting stream did not wait";
		marker = ((volatile unsigned *)hm)[0];
		if (!why && marker != 0)
			why = "the kernel behind the wait ran early";
		open_gate(&g2);
		CHECK(aiStreamSynchronize(s2));
		if (!why && ((volatile unsigned *)hm)[0] != 7)
			why = "the kernel behind the wait did not run";
		report("stream_wait_event", why);
		CHECK(aiEventDestroy(ev));
		CHECK(aiStreamDestroy(s2));
	}

	/* membar: queued between two kernels, ordered like everything else */
	why = NULL;
	value = 9;
	CHECK(aiLaunchKernel(fill, (aiDim3){ 16, 1, 1 }, (aiDim3){ 256, 1, 1 },
			     fill_args, 0, s));
	CHECK(aiStreamMemoryBarrier(s));
	CHECK(aiMemcpyAsync(dc, dm, n * 4, aiMemcpyDeviceToDevice, s));
	CHECK(aiStreamSynchronize(s));
	CHECK(aiMemcpy(hc, dc, n * 4, aiMemcpyDeviceToHost));
	for (size_t i = 0; i < n && !why; i++)
		if (((unsigned *)hc)[i] != 9)
			why = "work after the barrier missed a write before it";
	report("membar", why);

	/* fence reset: the stream starts over and keeps working */
	why = NULL;
	CHECK(aiStreamResetFences(s));
	value = 10;
	CHECK(aiLaunchKernel(fill, (aiDim3){ 16, 1, 1 }, (aiDim3){ 256, 1, 1 },
			     fill_args, 0, s));
	CHECK(aiStreamSynchronize(s));
	if (((volatile unsigned *)hm)[n - 1] != 10)
		why = "work after the reset did not run";
	if (!why && aiStreamResetFences(s) != aiSuccess)
		why = "second reset";
	report("fence_reset", why);

	CHECK(aiStreamDestroy(s));
	CHECK(aiFree(dm));
	CHECK(aiFree(db));
	CHECK(aiFree(dc));
	free(hc);
}

/* ---- the transformer unit ------------------------------------------------ */

static void *upload(const void *host, size_t bytes)
{
	void *d;

	CHECK(aiMalloc(&d, bytes));
	CHECK(aiMemcpy(d, host, bytes, aiMemcpyHostToDevice));
	return d;
}

static float frand(uint64_t *st)
{
	return (float)(rng_next(st) % 20001) / 10000.0f - 1.0f;
}

static void check_encode_decode(void)
{
	enum { N = 37, VOCAB = 50, DIM = 24 };
	unsigned tokens[N], got_tok[N], want_tok[N];
	static float table[VOCAB * DIM], pos[N * DIM], out[N * DIM];
	static float logits[N * VOCAB];
	uint64_t st = 99;
	const char *why = NULL;
	void *dtok, *dtab, *dpos, *dout, *dlog, *dres;

	for (int i = 0; i < N; i++)
		tokens[i] = (unsigned)(rng_next(&st) % VOCAB);
	for (int i = 0; i < VOCAB * DIM; i++)
		table[i] = frand(&st);
	for (int i = 0; i < N * DIM; i++)
		pos[i] = frand(&st);
	dtok = upload(tokens, sizeof(tokens));
	dtab = upload(table, sizeof(table));
	dpos = upload(pos, sizeof(pos));
	CHECK(aiMalloc(&dout, sizeof(out)));
	CHECK(aiTransformerEncode(dout, dtok, dtab, dpos, N, VOCAB, DIM, NULL));
	CHECK(aiMemcpy(out, dout, sizeof(out), aiMemcpyDeviceToHost));
	for (int i = 0; i < N && !why; i++)
		for (int j = 0; j < DIM; j++)
			if (out[i * DIM + j] !=
			    table[tokens[i] * DIM + j] + pos[i * DIM + j]) {
				why = "embedding differs";
				break;
			}
	CHECK(aiTransformerEncode(dout, dtok, dtab, NULL, N, VOCAB, DIM, NULL));
	CHECK(aiMemcpy(out, dout, sizeof(out), aiMemcpyDeviceToHost));
	for (int i = 0; i < N && !why; i++)
		if (memcmp(&out[i * DIM], &table[tokens[i] * DIM], DIM * 4))
			why = "embedding without positions differs";
	report("encode", why);

	why = NULL;
	for (int i = 0; i < N * VOCAB; i++)
		logits[i] = frand(&st);
	logits[5 * VOCAB + 7] = 3.0f;	/* a tie: the first maximum wins */
	logits[5 * VOCAB + 9] = 3.0f;
	logits[6 * VOCAB + 11] = NAN;	/* NaN counts as the maximum */
	for (int i = 0; i < N; i++) {
		int best = 0;

		for (int j = 0; j < VOCAB; j++) {
			float x = logits[i * VOCAB + j];

			if (isnan(x)) {
				best = j;
				break;
			}
			if (x > logits[i * VOCAB + best])
				best = j;
		}
		want_tok[i] = (unsigned)best;
	}
	dlog = upload(logits, sizeof(logits));
	CHECK(aiMalloc(&dres, sizeof(got_tok)));
	CHECK(aiTransformerDecode(dres, dlog, N, VOCAB, NULL));
	CHECK(aiMemcpy(got_tok, dres, sizeof(got_tok), aiMemcpyDeviceToHost));
	if (memcmp(got_tok, want_tok, sizeof(got_tok)))
		why = "argmax differs";
	if (!why && (got_tok[5] != 7 || got_tok[6] != 11))
		why = "tie or NaN handled wrong";
	report("decode", why);

	CHECK(aiFree(dtok));
	CHECK(aiFree(dtab));
	CHECK(aiFree(dpos));
	CHECK(aiFree(dout));
	CHECK(aiFree(dlog));
	CHECK(aiFree(dres));
}

static void check_attention(int causal)
{
	enum { N = 19, M = 23, DIM = 16, VDIM = 12 };
	static float q[N * DIM], k[M * DIM], v[M * VDIM], out[N * VDIM];
	uint64_t st = 5 + (uint64_t)causal;
	const char *why = NULL;
	void *dq, *dk, *dv, *dout;

	for (int i = 0; i < N * DIM; i++)
		q[i] = frand(&st);
	for (int i = 0; i < M * DIM; i++)
		k[i] = frand(&st);
	for (int i = 0; i < M * VDIM; i++)
		v[i] = frand(&st);
	dq = upload(q, sizeof(q));
	dk = upload(k, sizeof(k));
	dv = upload(v, sizeof(v));
	CHECK(aiMalloc(&dout, sizeof(out)));
	CHECK(aiTransformerAttention(dout, dq, dk, dv, N, M, DIM, VDIM, causal,
				     NULL));
	CHECK(aiMemcpy(out, dout, sizeof(out), aiMemcpyDeviceToHost));
	for (int i = 0; i < N && !why; i++) {
		double s[M], mx = -INFINITY, sum = 0;
		int last = causal ? i : M - 1;

		for (int j = 0; j <= last; j++) {
			s[j] = 0;
			for (int d = 0; d < DIM; d++)
				s[j] += (double)q[i * DIM + d] * k[j * DIM + d];
			s[j] /= sqrt((double)DIM);
			mx = s[j] > mx ? s[j] : mx;
		}
		for (int j = 0; j <= last; j++) {
			s[j] = exp(s[j] - mx);
			sum += s[j];
		}
		for (int d = 0; d < VDIM; d++) {
			double want = 0;

			for (int j = 0; j <= last; j++)
				want += s[j] / sum * v[j * VDIM + d];
			if (fabs(out[i * VDIM + d] - want) > 1e-5) {
				why = "output differs from the host";
				break;
			}
		}
	}
	report(causal ? "attention_causal" : "attention", why);
	CHECK(aiFree(dq));
	CHECK(aiFree(dk));
	CHECK(aiFree(dv));
	CHECK(aiFree(dout));
}

/* A token outside the table faults the context, like a bad kernel. */
static void check_bad_token(int dev)
{
	aiCtx_t ctx;
	unsigned tokens[4] = { 0, 1, 1000, 2 };
	float table[8 * 4] = { 0 };
	void *dtok, *dtab, *dout;
	aiError_t e;

	CHECK(aiCtxCreate(&ctx, dev));
	dtok = upload(tokens, sizeof(tokens));
	dtab = upload(table, sizeof(table));
	CHECK(aiMalloc(&dout, 4 * 4 * sizeof(float)));
	CHECK(aiTransformerEncode(dout, dtok, dtab, NULL, 4, 8, 4, NULL));
	e = aiDeviceSynchronize();
	(void)aiGetLastError();
	CHECK(aiCtxSetCurrent(NULL));
	(void)aiCtxDestroy(ctx);	/* its work failed: that is what it says */
	(void)aiGetLastError();
	report("bad_token", e == aiErrorLaunchFailure ? NULL :
	       "a token outside the table did not fault");
}

int main(int argc, char **argv)
{
	int dev = 0;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-d", usage)))
			dev = (int)opt_number("-d", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	select_device(dev);
	aiModule_t vmod = load_kernel("vecadd.aimod");
	aiModule_t fmod = load_kernel("fill.aimod");
	aiFunction_t vecadd = get_function(vmod, "vecadd");
	aiFunction_t fill = get_function(fmod, "fill_u32");

	check_memset();
	check_memcpy();
	check_events(vecadd);
	check_host_func(vecadd, fill);
	check_encode_decode();
	check_attention(0);
	check_attention(1);
	check_bad_token(dev);

	CHECK(aiModuleUnload(vmod));
	CHECK(aiModuleUnload(fmod));
	if (failures) {
		printf("Test FAILED: %d checks\n", failures);
		return EXIT_FAIL;
	}
	printf("Test passed\n");
	return EXIT_PASS;
}
