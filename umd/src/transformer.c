/* SPDX-License-Identifier: MIT */
/*
 * transformer.c - the device's fixed-function transformer unit
 * (CMD_TRANSFORMER): token embedding, greedy decoding, one attention head.
 */
#include <string.h>

#include "rt.h"

static aiError_t submit(aiStream_t stream, struct aicard_cmd_transformer *cmd)
{
	struct aiCtx *ctx = NULL;
	struct aiStream *s;
	aiError_t e = aicrt_resolve_stream(stream, &ctx, &s);

	_Static_assert(sizeof(*cmd) == AICARD_CMD_SIZE, "command size");
	if (e)
		return e;
	if (!(ctx->info.caps & AICARD_CAP_TRANSFORMER))
		return aiErrorNotSupported;
	cmd->type = AICARD_CMD_TRANSFORMER;
	/* like a kernel: a bad token faults it, the next sync reports that */
	e = aicrt_submit_cmd(s, cmd, true);
	if (e == aiErrorInvalidValue)
		e = aiErrorInvalidDevicePointer;	/* EINVAL: a buffer is not ours */
	return e;
}

static bool dims_ok(unsigned a, unsigned b)
{
	return a && b && a <= AICARD_TRANSFORMER_MAX_DIM &&
	       b <= AICARD_TRANSFORMER_MAX_DIM;
}

aiError_t aiTransformerEncode(float *out, const unsigned *tokens,
			      const float *table, const float *positions,
			      unsigned n, unsigned vocab, unsigned dim,
			      aiStream_t stream)
{
	struct aicard_cmd_transformer cmd;

	if (!out || !tokens || !table || !dims_ok(n, dim) ||
	    !dims_ok(vocab, 1))
		return aicrt_ret(aiErrorInvalidValue);
	memset(&cmd, 0, sizeof(cmd));
	cmd.op = AICARD_TRANSFORMER_ENCODE;
	cmd.rows = n;
	cmd.dim = dim;
	cmd.keys = vocab;
	cmd.dst = (uintptr_t)out;
	cmd.src0 = (uintptr_t)tokens;
	cmd.src1 = (uintptr_t)table;
	cmd.src2 = (uintptr_t)positions;
	return aicrt_ret(submit(stream, &cmd));
}

aiError_t aiTransformerDecode(unsigned *tokens, const float *logits,
			      unsigned n, unsigned vocab, aiStream_t stream)
{
	struct aicard_cmd_transformer cmd;

	if (!tokens || !logits || !dims_ok(n, vocab))
		return aicrt_ret(aiErrorInvalidValue);
	memset(&cmd, 0, sizeof(cmd));
	cmd.op = AICARD_TRANSFORMER_DECODE;
	cmd.rows = n;
	cmd.dim = vocab;
	cmd.dst = (uintptr_t)tokens;
	cmd.src0 = (uintptr_t)logits;
	return aicrt_ret(submit(stream, &cmd));
}

aiError_t aiTransformerAttention(float *out, const float *q, const float *k,
				 const float *v, unsigned n, unsigned m,
				 unsigned dim, unsigned vdim, int causal,
				 aiStream_t stream)
{
	struct aicard_cmd_transformer cmd;

	if (!out || !q || !k || !v || !dims_ok(n, m) || !dims_ok(dim, vdim) ||
	    (unsigned long long)n * m > AICARD_TRANSFORMER_MAX_SCORES)
		return aicrt_ret(aiErrorInvalidValue);
	memset(&cmd, 0, sizeof(cmd));
	cmd.op = AICARD_TRANSFORMER_ATTENTION;
	cmd.flags = causal ? AICARD_TRANSFORMER_CAUSAL : 0;
	cmd.rows = n;
	cmd.dim = dim;
	cmd.keys = m;
	cmd.vdim = vdim;
	cmd.dst = (uintptr_t)out;
	cmd.src0 = (uintptr_t)q;
	cmd.src1 = (uintptr_t)k;
	cmd.src2 = (uintptr_t)v;
	return aicrt_ret(submit(stream, &cmd));
}
