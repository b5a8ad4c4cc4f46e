"""Mutation check: plant plausible bugs one at a time and make sure the tests catch each.

    python tools/mutants.py                 # every mutant, with and without Numba
    python tools/mutants.py --numba off     # only MINIVAE_DISABLE_NUMBA=1 (or: on)
    python tools/mutants.py --only sub-sign,adam-bias-off-by-one
    python tools/mutants.py --list

Each mutant replaces one exact piece of source text (which must occur exactly once: a mutant whose
text has moved is reported as STALE, never silently skipped) in a temporary copy of the tree, runs
only the tests relevant to it there (``python -m pytest -x``), and prints ``killed`` when they fail or
``SURVIVED`` when they pass. The working tree itself is never modified. The unmutated tests are run
first in each mode: a failure there makes every "killed" meaningless, so the script stops. Exit
status 0 only when every mutant is killed in every mode.
"""
# ruff: noqa: E501  (the mutants are a table, one source edit per line)
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 600  # seconds per test run; a mutant that hangs counts as killed (and is reported so)


def gc(*ops):
    """The float64 gradcheck of these registered ops."""
    return [f"tests/test_ops_gradcheck.py::test_op_gradcheck_float64[{op}]" for op in ops]


CPU_KERNELS = "tests/test_cpu_kernels.py"


def kern(*names):
    """Tests of tests/test_cpu_kernels.py (Numba kernel against the NumPy reference; they switch
    Numba on themselves, so they run in both modes)."""
    return [f"{CPU_KERNELS}::test_{n}" for n in names]


SOFTMAX_K, GUMBEL_K = kern("softmax_kernels_match_the_reference"), kern("gumbel_softmax_kernel_matches_the_reference",
                                                                        "gumbel_softmax_same_seed_same_sample_as_generator_noise")
OPTIM_K = kern("optimizer_kernels_match_the_reference")
CUDA = "tests/test_cuda_kernels.py"
TIMING = "tests/test_gpu_timing.py"
ESTIMATOR_VALUES = "tests/test_estimator_values.py"
TIES = "tests/test_ties_and_streams.py"


class Mutant:
    def __init__(self, name, path, edits, tests, what):
        self.name, self.path, self.tests, self.what = name, path, tests, what
        self.edits = [edits] if isinstance(edits[0], str) else edits

    def apply(self, text):
        for old, new in self.edits:
            if text.count(old) != 1:
                raise LookupError(f"{self.name}: {old!r} occurs {text.count(old)} times in {self.path}")
            text = text.replace(old, new)
        return text


M = Mutant
MUTANTS = [
    # ---- the engine -------------------------------------------------------------------------
    M("engine-overwrite-not-accumulate", "minivae/engine.py",
      ("grads[id(parent)] = gp if id(parent) not in grads else _add(grads[id(parent)], gp)",
       "grads[id(parent)] = gp"),
      ["tests/test_engine.py"], "a node used twice keeps only its last gradient"),
    M("engine-skip-missing-gradient", "minivae/engine.py",
      ("        if gp is None:\n            raise", "        if gp is None and False:\n            raise"),
      ["tests/test_engine_strict.py"], "a VJP that forgets an input is accepted"),
    M("engine-leaf-grad-shared", "minivae/engine.py", ("    if id(_memory(g)) not in stored and not _broadcast(g):", "    if True:"),
      ["tests/test_engine.py::test_each_leaf_gets_a_gradient_array_of_its_own"], "two leaves share one gradient array: clipping scales it twice"),
    M("engine-leaf-grad-view-of-another", "minivae/engine.py", ('    while getattr(a, "base", None) is not None:', '    while False:'),
      ["tests/test_engine.py::test_each_leaf_gets_a_gradient_array_of_its_own"], "a leaf's gradient is a view of another leaf's"),
    M("engine-leaf-grad-broadcast-kept", "minivae/engine.py", ("    if id(_memory(g)) not in stored and not _broadcast(g):", "    if id(_memory(g)) not in stored:"),
      ["tests/test_engine.py::test_each_leaf_gets_a_gradient_array_of_its_own"], "a broadcast view becomes a leaf's .grad"),
    # ---- arithmetic and unary VJPs ----------------------------------------------------------
    M("sub-sign", "minivae/ops/arith.py",
      ("unbroadcast(g, ctx.xshape) if nx else None, -unbroadcast(g, ctx.yshape) if ny else None",
       "unbroadcast(g, ctx.xshape) if nx else None, unbroadcast(g, ctx.yshape) if ny else None"), gc("sub"), "wrong sign"),
    M("mul-swapped", "minivae/ops/arith.py",
      ("unbroadcast(g * y, x.shape) if nx else None, unbroadcast(g * x, y.shape) if ny else None",
       "unbroadcast(g * x, x.shape) if nx else None, unbroadcast(g * y, y.shape) if ny else None"), gc("mul"), "swapped arguments"),
    M("div-sign", "minivae/ops/arith.py", ("unbroadcast(-gx * ctx.z, ctx.y.shape)", "unbroadcast(gx * ctx.z, ctx.y.shape)"),
      gc("div"), "wrong sign"),
    M("pow-exponent-off-by-one", "minivae/ops/arith.py", ("y * x ** (y - 1)", "y * x ** y"),
      gc("pow"), "off-by-one exponent"),
    M("maximum-ties-not-split", "minivae/ops/arith.py", ("wx = (x > y) + 0.5 * (x == y)", "wx = (x >= y) + 0.0 * (x == y)"),
      [TIES], "ties give the whole gradient to x"),
    M("where-branches-swapped", "minivae/ops/arith.py", ("gx, gy = ctx.xp.where(ctx.cond, g, zero), ctx.xp.where(ctx.cond, zero, g)", "gy, gx = ctx.xp.where(ctx.cond, g, zero), ctx.xp.where(ctx.cond, zero, g)"),
      gc("where"), "swapped arguments"),
    M("clip-identity-backward", "minivae/ops/arith.py", ("        return g * ctx.inside", "        return g"),
      gc("clip"), "identity backward"),
    M("log-wrong-derivative", "minivae/ops/unary.py", ("        return g / ctx.x\n", "        return g / (1 + ctx.x)\n"),
      gc("log"), "wrong formula"),
    M("tanh-sign", "minivae/ops/unary.py", ("g * (1 - ctx.y * ctx.y)", "g * (1 + ctx.y * ctx.y)"), gc("tanh"), "wrong sign"),
    M("tanh-off-by-1e-5", "minivae/ops/unary.py", ("g * (1 - ctx.y * ctx.y)", "g * (1 - ctx.y * ctx.y) * 1.00001"),
      gc("tanh"), "a VJP off by 1e-5 relative"),
    M("sqrt-factor", "minivae/ops/unary.py", ("g / (2 * ctx.y)", "g / ctx.y"), gc("sqrt"), "wrong factor"),
    M("sigmoid-missing-term", "minivae/ops/unary.py", ("g * ctx.y * (1 - ctx.y)", "g * ctx.y"), gc("sigmoid"), "a missing term"),
    M("softplus-sigmoid-of-minus-x", "minivae/ops/unary.py", ("g * stable_sigmoid(ctx.xp, ctx.x)", "g * stable_sigmoid(ctx.xp, -ctx.x)"),
      gc("softplus"), "wrong sign"),
    M("stable-softplus-sign", "minivae/ops/unary.py", ("xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))", "xp.maximum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))"),
      gc("softplus", "bce_with_logits") + ["tests/test_numerics.py"], "wrong sign in the stable formula"),
    M("stable-sigmoid-branch", "minivae/ops/unary.py", ("xp.where(x >= 0, 1 / (1 + e), e / (1 + e))", "xp.where(x >= 0, 1 / (1 + e), 1 / (1 + e))"),
      gc("sigmoid") + ["tests/test_numerics.py"], "wrong branch for x < 0"),
    # ---- reductions, matmul, shapes --------------------------------------------------------
    M("mean-no-division", "minivae/ops/reduce.py", ("ctx.xp.broadcast_to(g / ctx.n, ctx.shape)", "ctx.xp.broadcast_to(g, ctx.shape)"),
      gc("mean"), "wrong factor"),
    M("max-ties-not-shared", "minivae/ops/reduce.py", ("return g * mask / mask.sum(axis=ctx.axes, keepdims=True)", "return g * mask"),
      ["tests/test_engine.py"], "ties each get the full gradient"),
    M("logsumexp-no-max-shift", "minivae/ops/reduce.py", ("    return m + xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True))",
                                                          "    return xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True))"),
      gc("logsumexp", "categorical_kl"), "a missing term"),
    M("matmul-1d-wrong-axis", "minivae/ops/linalg.py", ("g = g[..., None, :] if y.ndim > 1 else g[..., None]", "g = g[..., :, None] if y.ndim > 1 else g[..., None]"),
      ["tests/test_ops_gradcheck.py::test_matmul_gradcheck_every_shape_pattern"], "wrong axis"),
    M("getitem-overwrite-repeats", "minivae/ops/shape.py", ("ctx.xp.add.at(gx, ctx.index, g)", "gx[ctx.index] = g"),
      gc("getitem"), "repeated indices overwrite instead of accumulating"),
    M("transpose-not-inverted", "minivae/ops/shape.py", ("ctx.save(inverse=tuple(sorted(range(x.ndim), key=axes.__getitem__)))", "ctx.save(inverse=axes)"),
      gc("transpose"), "the permutation, not its inverse"),
    M("stack-wrong-axis", "minivae/ops/shape.py", ("g.take(i, axis=ctx.axis)", "g.take(i, axis=0)"), gc("stack"), "wrong axis"),
    M("unbroadcast-keeps-size-one-axes", "minivae/ops/_broadcast.py", ("if n == 1 and g.shape[lead + i] != 1)", "if n == 1 and g.shape[lead + i] != 1 and i)"),
      gc("add", "mul"), "a size-1 leading axis is not summed"),
    # ---- softmax, sampling, losses (NumPy reference) ----------------------------------------
    M("softmax-vjp-times-tau", "minivae/ops/softmax.py", ("return y * (g - (g * y).sum(axis=axis, keepdims=True)) / _tau(temperature, y.dtype)",
                                                         "return y * (g - (g * y).sum(axis=axis, keepdims=True)) * _tau(temperature, y.dtype)"),
      gc("softmax") + [ESTIMATOR_VALUES], "wrong factor"),
    M("softmax-vjp-unweighted-sum", "minivae/ops/softmax.py", ("return y * (g - (g * y).sum(axis=axis, keepdims=True)) / _tau(temperature, y.dtype)",
                                                              "return y * (g - g.sum(axis=axis, keepdims=True)) / _tau(temperature, y.dtype)"),
      gc("softmax") + [ESTIMATOR_VALUES], "a missing factor"),
    M("log-softmax-vjp-missing-exp", "minivae/ops/softmax.py", ("(g - ctx.xp.exp(ctx.y) * g.sum(axis=ctx.axis, keepdims=True)) / _tau(ctx.tau, ctx.y.dtype)",
                                                               "(g - ctx.y * g.sum(axis=ctx.axis, keepdims=True)) / _tau(ctx.tau, ctx.y.dtype)"),
      gc("log_softmax"), "y for exp(y)"),
    M("gumbel-saves-one-hot", "minivae/ops/sampling.py", ("ctx.save(y=y, tau=temperature", "ctx.save(y=out, tau=temperature"),
      [ESTIMATOR_VALUES], "hard backward through the one-hot (gradient 0)"),
    M("gumbel-hard-identity-backward", "minivae/ops/sampling.py",
      [("ctx.save(y=y, tau=temperature", "ctx.save(hard=hard, y=y, tau=temperature"),
       ("    def backward(ctx, g):\n        y = ctx.y\n", "    def backward(ctx, g):\n        if ctx.hard:\n            return g\n        y = ctx.y\n")],
      [ESTIMATOR_VALUES], "hard backward returns the upstream gradient unchanged"),
    M("gumbel-counter-reuses-noise", "minivae/ops/sampling.py", ("drawn_counter(rng, (logits.data.size + 3) // 4)", "drawn_counter(rng, logits.data.size // 4)"),
      [ESTIMATOR_VALUES, "tests/distributions"], "noise reused (the counter advances one block short)"),
    M("reparameterize-factor", "minivae/ops/losses.py", ("return g, 0.5 * g * noise", "return g, g * noise"),
      gc("reparameterize", "reparameterize_kl"), "wrong factor"),
    M("reparameterize-sum-to-noise-shape", "minivae/ops/losses.py",
      ("unbroadcast(glog_var, ctx.log_var_shape)", "unbroadcast(glog_var, ctx.noise.shape)"),
      gc("reparameterize"), "the issue's broadcasting bug"),
    M("kl-normal-missing-term", "minivae/ops/losses.py", ("return g * mu, 0.5 * g * (var - 1)", "return g * mu, 0.5 * g * var"),
      gc("kl_standard_normal", "reparameterize_kl"), "a missing term"),
    M("reparameterize-kl-noise-as-z", "minivae/ops/losses.py",
      ("z = mu + _noise(ctx.xp, log_var, eps)", "z = mu + eps"), gc("reparameterize_kl") + ["tests/test_engine_outputs.py"],
      "the sample's noise unscaled"),
    M("reparameterize-kl-drops-z-path", "minivae/ops/losses.py",
      ("gmu, glog_var = gmu + m, glog_var + v", "gmu, glog_var = m, v"),
      gc("reparameterize_kl") + ["tests/test_engine_outputs.py"], "a missing term"),
    M("linear-relu-mask-at-zero", "minivae/ops/linalg.py", ("g = g * (ctx.y > 0)", "g = g * (ctx.y >= 0)"),
      gc("linear") + ["tests/test_linear.py"], "off by one at the kink"),
    M("linear-bias-gradient-dropped", "minivae/ops/linalg.py",
      ("unbroadcast(g, ctx.bias_shape) if need_bias", "unbroadcast(0 * g, ctx.bias_shape) if need_bias"),
      gc("linear") + ["tests/test_linear.py"], "zero backward"),
    M("engine-multi-output-vjp-too-early", "minivae/engine.py",
      ("            if outputs_left[id(ctx)]:\n                continue\n", ""),
      ["tests/test_engine_outputs.py"], "a VJP run before all its outputs' gradients arrived"),
    M("categorical-kl-prior-sign", "minivae/ops/losses.py", ("g[..., None] * (ctx.p - ctx.q)", "g[..., None] * (ctx.q - ctx.p)"),
      gc("categorical_kl") + ["tests/test_engine_strict.py"], "wrong sign"),
    M("categorical-kl-missing-kl", "minivae/ops/losses.py", ("return ctx.q * (ctx.diff - ctx.kl[..., None]) * g[..., None], gp", "return ctx.q * ctx.diff * g[..., None], gp"),
      gc("categorical_kl"), "a missing term"),
    M("bce-missing-target", "minivae/ops/losses.py", ("dx = stable_sigmoid(ctx.xp, x) - t if", "dx = stable_sigmoid(ctx.xp, x) if"),
      gc("bce_with_logits"), "a missing term"),
    M("bce-target-sign", "minivae/ops/losses.py", ("unbroadcast((-g if sign > 0 else g) * x, t.shape)", "unbroadcast(g * x, t.shape)"), gc("bce_with_logits"), "wrong sign"),
    M("bernoulli-log-prob-target-sign", "minivae/ops/losses.py", ("unbroadcast((-g if sign > 0 else g) * x, t.shape)", "unbroadcast(-g * x, t.shape)"),
      gc("bernoulli_log_prob"), "the target's gradient of the log-likelihood has the loss's sign"),
    M("bernoulli-log-prob-formula-sign", "minivae/ops/losses.py", ("else x * t - stable_softplus(xp, x)", "else stable_softplus(xp, x) - x * t"),
      gc("bernoulli_log_prob") + ["tests/test_objectives_models.py"], "the log-likelihood has the loss's value"),
    M("cuda-bce-sign-on-loss-only", "kernels/bce.cu", ("        dx[i] = sign * d;", "        dx[i] = d;"),
      [f"{CUDA}::test_bce_with_logits_loss_and_gradient"], "the log-likelihood's derivative has the loss's sign"),
    M("numba-bce-sign-dropped", "minivae/_cpu/bce.py", ("        loss[i] = sign * (max(xi, 0.0) - xi * ti + log1p(e))", "        loss[i] = max(xi, 0.0) - xi * ti + log1p(e)"),
      kern("bce_kernel_matches_the_reference"), "the log-likelihood with the loss's sign"),
    # ---- Numba kernels -------------------------------------------------------------------------
    M("numba-softmax-bwd-sign", "minivae/_cpu/softmax.py", ("out[r, j] = y[r, j] * (g[r, j] - s) * inv_tau", "out[r, j] = y[r, j] * (g[r, j] + s) * inv_tau"),
      SOFTMAX_K, "wrong sign"),
    M("numba-log-softmax-fwd-missing-scale", "minivae/_cpu/softmax.py", ("out[r, j] = (x[r, j] - m) * inv_tau - log_s", "out[r, j] = (x[r, j] - m) - log_s"),
      SOFTMAX_K, "τ forgotten"),
    M("numba-row-max-off-by-one", "minivae/_cpu/rows.py", ("    for j in range(1, x.shape[1]):\n        m = maxnum(m, x[r, j])", "    for j in range(1, x.shape[1] - 1):\n        m = maxnum(m, x[r, j])"),
      SOFTMAX_K + ["tests/test_numerics.py"], "the last entry is left out of the max"),
    M("numba-exp-clamp-drops-nan", "minivae/_cpu/vector.py", ("t = A_LO if a < A_LO else a", "t = a if a >= A_LO else A_LO"),
      kern("vector_exp_is_within_an_ulp_of_the_exact_value", "a_nan_in_a_row_makes_the_row_nan"), "a NaN clamped to A_LO: the row's NaN is lost"),
    M("numba-exp-one-part-ln2", "minivae/_cpu/vector.py", ("r = fmuladd(-n, LN2_LO, fmuladd(-n, LN2_HI, t))", "r = fmuladd(-n, LN2_HI, t)"),
      kern("vector_exp_is_within_an_ulp_of_the_exact_value") + SOFTMAX_K, "ln 2's low part forgotten"),
    M("numba-exp-one-scale", "minivae/_cpu/vector.py", ("    return p * numpy.int64((h + 1023) << 52).view(numpy.float64) * numpy.int64((j - h + 1023) << 52).view(numpy.float64)",
                                                         "    return p * numpy.int64((j + 1023) << 52).view(numpy.float64)"),
      kern("vector_exp_is_within_an_ulp_of_the_exact_value"), "2^n built in one piece: wrong past 2^1023 and below 2^−1022"),
    M("numba-exp-no-upper-clamp", "minivae/_cpu/vector.py", ("    t = A_HI if t > A_HI else t\n", ""),
      kern("vector_exp_is_within_an_ulp_of_the_exact_value", "gaussian_kernels_at_extreme_log_variances"), "a huge a's exponent overflows its bits"),
    M("numba-exp-shift-bits", "minivae/_cpu/vector.py", ("numpy.int64((j - h + 1023) << 52)", "numpy.int64((j - h + 1022) << 52)"),
      kern("vector_exp_is_within_an_ulp_of_the_exact_value", "bce_float32_kernel_is_within_an_ulp_of_the_exact_value"), "2^n off by a factor 2"),
    M("numba-sum-any-order-skips-last", "minivae/_cpu/vector.py", ("    for j in range(v.size):\n        s += v[j]", "    for j in range(v.size - 1):\n        s += v[j]"),
      SOFTMAX_K + GUMBEL_K, "a row's sum leaves its last term out"),
    M("numba-softmax-bwd-unweighted-sum", "minivae/_cpu/softmax.py", ("s = dot_any_order(g[r], y[r])", "s = sum_any_order(g[r])"),
      SOFTMAX_K, "Σḡ for Σḡy"),
    M("numba-gumbel-block-off-by-one", "minivae/_cpu/philox.py", ("philox_block(block + (i >> _2), k0, k1)", "philox_block(block + ((i + _1) >> _2), k0, k1)"),
      GUMBEL_K, "noise from the wrong Philox block"),
    M("numba-philox-word-order", "minivae/_cpu/philox.py", ("(c3 if odd else c2) if i & _2 else (c1 if odd else c0)", "(c2 if odd else c3) if i & _2 else (c1 if odd else c0)"),
      GUMBEL_K, "words 2 and 3 of a block swapped"),
    M("numba-gumbel-word-half-step", "minivae/_cpu/philox.py", ("numpy.float64(numpy.int64(w)) - 0.5)", "numpy.float64(numpy.int64(w)) + 0.5)"),
      kern("gumbel_noise_of_a_word_is_the_generator_s_formula"), "1 − u for w + 1"),
    M("numba-gumbel-hard-ties-to-last", "minivae/_cpu/gumbel.py", ("best = min(best, j if y[r, j] == m else k)", "best = j if y[r, j] == m else best"),
      GUMBEL_K + [TIES], "ties to the highest index"),
    M("numba-gumbel-hard-nan-row-one-hot", "minivae/_cpu/gumbel.py", ("out[r, j] = math.nan if m != m else 1.0 if j == best else 0.0", "out[r, j] = 1.0 if j == best else 0.0"),
      kern("a_nan_in_a_row_makes_the_row_nan") + ["tests/test_numerics.py"], "a NaN row's hard sample is a clean vector"),
    M("numba-log-ln2-lo-dropped", "minivae/_cpu/vector.py", ("fmuladd(s, fmuladd(r, s2, half_f2), kf * LN2_LO)", "fmuladd(s, fmuladd(r, s2, half_f2), 0.0)"),
      kern("vector_log_is_within_an_ulp_of_the_exact_value", "gumbel_noise_of_a_word_is_the_generator_s_formula"), "ln 2's low part forgotten"),
    M("numba-log-reduced-to-one-two", "minivae/_cpu/vector.py", ("SQRT_HALF_BITS = _bits(math.sqrt(0.5))", "SQRT_HALF_BITS = _bits(1.0)"),
      kern("vector_log_is_within_an_ulp_of_the_exact_value"), "m ∈ [1, 2): s up to ⅓, where ten terms are not enough"),
    M("numba-cache-name-without-digest", "minivae/_cpu/__init__.py", ('twin.__qualname__ = f"{fn.__qualname__}_{suffix}_{_DIGEST}"', 'twin.__qualname__ = f"{fn.__qualname__}_{suffix}"'),
      kern("a_changed_helper_reaches_the_cached_kernels"), "a kernel cached before an edit of its helpers runs the old helpers"),
    M("numba-reparameterize-factor", "minivae/_cpu/gaussian.py", ("n = exp(0.5 * log_var[i]) * eps[i]", "n = exp(log_var[i]) * eps[i]"),
      kern("gaussian_kernels_match_the_reference"), "σ² for σ"),
    M("numba-kl-missing-term", "minivae/_cpu/gaussian.py", ("kl[i] = 0.5 * (mu[i] * mu[i] + v - 1.0 - log_var[i])", "kl[i] = 0.5 * (mu[i] * mu[i] + v - log_var[i])"),
      kern("gaussian_kernels_match_the_reference"), "a missing term"),
    M("numba-categorical-kl-sign", "minivae/_cpu/categorical.py", ("diff[r, j] = (logits[r, j] - m - log_s) - log_p[pr, j]", "diff[r, j] = (logits[r, j] - m - log_s) + log_p[pr, j]"),
      kern("categorical_kl_kernel_matches_the_reference"), "wrong sign"),
    M("numba-categorical-kl-weights-of-the-prior-row", "minivae/_cpu/categorical.py", ("kl[r] = dot_any_order(q[r], diff[r])", "kl[r] = dot_any_order(q[pr], diff[r])"),
      kern("categorical_kl_kernel_matches_the_reference"), "the row index of the prior for the posterior's"),
    M("numba-bce-sigmoid-branch", "minivae/_cpu/bce.py", ("((r if xi >= 0 else e * r) - ti)", "(r - ti)"),
      kern("bce_kernel_matches_the_reference"), "wrong branch for x < 0"),
    M("numba-log1p-rounding-uncorrected", "minivae/_cpu/vector.py", ("return log(u) + (x - (u - 1.0)) / u", "return log(u)"),
      kern("bce_float32_kernel_is_within_an_ulp_of_the_exact_value", "bce_kernel_matches_the_reference"), "log1p(x) as log(1 + x) rounded: tiny x's digits lost"),
    M("numba-adam-second-moment", "minivae/_cpu/adam.py", ("vi = b2 * v[i] + one_minus_b2 * gi * gi", "vi = b2 * v[i] + one_minus_b2 * gi"),
      OPTIM_K + ["tests/test_nn_optim.py"], "g for g²"),
    M("numba-sgd-momentum-ignored", "minivae/_cpu/sgd.py", ("vi = momentum * v[i] + g[i]", "vi = g[i]"),
      OPTIM_K + ["tests/test_nn_optim.py"], "a missing term"),
    M("numba-philox-round-constant", "minivae/_cpu/philox.py", ("_M0, _M1 = numpy.uint64(0xD2511F53)", "_M0, _M1 = numpy.uint64(0xD2511F52)"),
      GUMBEL_K, "a wrong Philox multiplier"),
    # ---- CUDA kernels, run on the CPU through the host emulation -----------------------------
    M("cuda-softmax-bwd-sign", "kernels/common.cuh", ("y * (g - s) * inv_tau;", "y * (g + s) * inv_tau;"),
      [CUDA + "::test_softmax_forward_and_backward", CUDA + "::test_gumbel_softmax_kl_pair"], "wrong sign"),
    M("cuda-softmax-sums-slots-past-the-row", "kernels/common.cuh", ("            s += in_row(t) ? e : T(0);", "            s += e;"),
      [CUDA + "::test_softmax_forward_and_backward"], "a block row's sum takes the exponentials of the slots past its end"),
    M("cuda-bernoulli-elbo-fwd-loss-sign", "kernels/elbo.cu", ("            return -l;", "            return l;"),
      [CUDA + "::test_bernoulli_negative_elbo_is_the_two_ops_bit_for_bit"], "the likelihood's terms with the loss's sign"),
    M("cuda-bernoulli-elbo-bwd-sign", "kernels/elbo.cu", ("        glogits[i] = s * dx;", "        glogits[i] = -s * dx;"),
      [CUDA + "::test_bernoulli_negative_elbo_is_the_two_ops_bit_for_bit"], "the logits' gradient with the wrong sign"),
    M("cuda-bernoulli-elbo-data-grad-sign", "minivae/ops/losses.py",
      ("gx = -(g / math.prod(logits.shape[:-1])) * logits if", "gx = (g / math.prod(logits.shape[:-1])) * logits if"),
      ["tests/test_device.py::test_the_fused_bernoulli_negative_elbo_through_the_emulated_cuda_kernels"],
      "the data's gradient on the GPU with the wrong sign"),
    M("bernoulli-elbo-kl-grad-without-beta", "minivae/ops/losses.py",
      ("return glogits, gx, ctx.xp.broadcast_to(s * ctx.beta, ctx.kl_shape).copy(), None",
       "return glogits, gx, ctx.xp.broadcast_to(s, ctx.kl_shape).copy(), None"),
      gc("bernoulli_negative_elbo"), "the KL terms' gradient without β"),
    M("cuda-reparameterize-bwd-factor", "kernels/gaussian.cu", ("glog_var[i] = T(0.5) * g[i] * noise[i];", "glog_var[i] = g[i] * noise[i];"),
      [CUDA + "::test_gaussian_reparameterization_and_kl"], "wrong factor"),
    M("cuda-kl-bwd-missing-term", "kernels/gaussian.cu", ("glog_var[i] = T(0.5) * gi * (var[i] - T(1));", "glog_var[i] = T(0.5) * gi * var[i];"),
      [CUDA + "::test_gaussian_reparameterization_and_kl"], "a missing term"),
    M("cuda-vector-alignment-ignored", "kernels/common.cuh",
      ("return k % (16 / (int)sizeof(T)) == 0 && (bits & 15ull) == 0;", "return k % (16 / (int)sizeof(T)) == 0;"),
      [CUDA + "::test_the_cases_run_clean_under_the_sanitizers[address]"], "16-byte loads from rows off a 16-byte boundary"),
    M("cuda-vector-tail-unguarded", "kernels/common.cuh",
      ("            if (G * i < k) reinterpret_cast<W*>(row + G * i)[h] = pack16<T>(", "            reinterpret_cast<W*>(row + G * i)[h] = pack16<T>("),
      [CUDA + "::test_the_cases_run_clean_under_the_sanitizers[address]"], "an unguarded tail"),
    M("cuda-joint-gaussian-bwd-sign", "kernels/gaussian.cu",
      ("v_bar = v_bar + T(0.5) * gkl[i] * (mv_exp(v) - T(1));", "v_bar = v_bar + T(0.5) * gkl[i] * (mv_exp(v) + T(1));"),
      [CUDA + "::test_reparameterization_and_kl_as_one_pair"], "wrong sign"),
    M("cuda-joint-gaussian-fwd-noise", "kernels/gaussian.cu",
      ("reparameterize_kl_elem(mu, log_var, eps[i], z, kl, i,", "reparameterize_kl_elem(mu, log_var, eps[i > 0 ? i - 1 : i], z, kl, i,"),
      [CUDA + "::test_reparameterization_and_kl_as_one_pair"], "noise of the wrong element"),
    M("cuda-group-sum-crosses-rows", "kernels/common.cuh",
      ("    for (int o = L / 2; o > 0; o >>= 1) v += __shfl_xor_sync", "    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync"),
      [CUDA + "::test_softmax_forward_and_backward"], "a row of 16 lanes sums its neighbour row's values too"),
    M("cuda-group-lane-of-the-warp", "kernels/common.cuh",
      ("MINIVAE_D int group_lane() { return (int)(threadIdx.x & (L - 1)); }", "MINIVAE_D int group_lane() { return (int)(threadIdx.x & 31); }"),
      [CUDA + "::test_softmax_forward_and_backward"], "a lane of a row group counted from the warp's start"),
    M("cuda-gumbel-group-noise-index", "kernels/gumbel_softmax.cu",
      ("    const int lane = threadIdx.x & (L - 1);\n    if constexpr (N == 1) {", "    const int lane = threadIdx.x & 31;\n    if constexpr (N == 1) {"),
      [CUDA + "::test_gumbel_softmax_noise_matches_the_numpy_stream"], "rows of 16 lanes draw the noise of the wrong elements"),
    M("cuda-group-argmax-crosses-rows", "kernels/gumbel_softmax.cu",
      ("        warp_argmax<L>(best, at);", "        warp_argmax(best, at);"),
      [CUDA + "::test_gumbel_softmax_noise_matches_the_numpy_stream"], "a hard sample of a 16-lane row takes its neighbour row's argmax"),
    M("cuda-pair-bwd-kl-term-without-kl", "kernels/gumbel_softmax.cu",
      ("categorical_kl_grad(mv_exp(log_q), c.diff(j, log_q), klr, gk)", "categorical_kl_grad(mv_exp(log_q), c.diff(j, log_q), T(0), gk)"),
      [CUDA + "::test_gumbel_softmax_kl_pair"], "the KL's gradient without its −KL term"),
    M("cuda-pair-every-row-the-first-prior", "kernels/gumbel_softmax.cu",
      ("prior + (row % prior_rows) * k, kr, lane);\n        const T total", "prior, kr, lane);\n        const T total"),
      [CUDA + "::test_gumbel_softmax_kl_pair"], "every row's KL to the first prior row"),
    M("cuda-pair-bwd-softmax-sum-per-lane", "kernels/gumbel_softmax.cu",
      ("        s = warp_sum<L>(s);\n        const CategoricalRow<T> c", "        const CategoricalRow<T> c"),
      [CUDA + "::test_gumbel_softmax_kl_pair"], "the softmax VJP's Σ ȳy left a lane's own part"),
    M("cuda-pair-dead-row-writes", "kernels/gumbel_softmax.cu",
      ("        if (lane == 0 && row < rows) kl[row] = total;", "        if (lane == 0) kl[row] = total;"),
      [CUDA + "::test_the_cases_run_clean_under_the_sanitizers[address]"], "a row past the end of a live warp writes its KL"),
    M("cuda-pair-ignores-the-graph-advance", "kernels/gumbel_softmax.cu",
      ("                                           int hard) {\n    offset += *shift;\n", "                                           int hard) {\n"),
      [CUDA + "::test_kernels_in_a_graph_take_the_counter_advance_and_adam_scalars_from_memory"],
      "a CUDA graph's categorical noise the same at every replay"),
    M("backward-keeps-gradients-by-id-alone", "minivae/engine.py", ("    stored[id(memory)] = memory\n", "    stored[id(memory)] = None\n"),
      ["tests/test_engine.py::test_a_fresh_gradient_is_not_taken_for_a_freed_one_whose_id_it_got"],
      "a freed array's id, reused by a new gradient, takes it for a kept one: a copy each eager step"),
    M("backward-drops-a-replaced-grad", "minivae/engine.py",
      ("            node.grad = _own(g, stored) if node.grad is None else _add(node.grad, g)\n",
       "            if node.grad is not None:\n                stored.pop(id(_memory(node.grad)), None)\n"
       "            node.grad = _own(g, stored) if node.grad is None else _add(node.grad, g)\n"),
      ["tests/test_engine.py::test_a_callers_gradient_that_was_a_leafs_grad_is_no_other_leafs"],
      "a .grad replaced by a sum forgotten, though it is the caller's ḡ too: another leaf takes it as its own"),
    M("pair-missing-kl-gradient-as-ones", "minivae/_gpu/gumbel.py",
      ("gkl = xp.zeros(rows, y.dtype) if gkl is None", "gkl = xp.ones(rows, y.dtype) if gkl is None"),
      [CUDA + "::test_gumbel_softmax_kl_pair_backward_with_one_gradient"], "a KL no gradient reached counted as if ḡ = 1"),
    M("pair-fused-with-a-learnable-prior", "minivae/ops/sampling.py",
      (" and not ctx.needs_input_grad[1] else None)", " else None)"),
      ["tests/test_device.py::test_the_gumbel_softmax_kl_pair_through_the_emulated_cuda_kernels"],
      "the pair's kernels for a learnable prior, which they give no gradient"),
    M("pair-cpu-sample-gradient-dropped", "minivae/ops/sampling.py", ("gl = gk if gl is None else gl + gk", "gl = gk"),
      ["tests/test_engine_outputs.py"] + gc("gumbel_softmax_kl"), "the sample's gradient lost where the KL's comes too"),
    M("pair-unused-kl-leaves-the-prior-without-gradient", "minivae/ops/sampling.py",
      ("        elif ctx.needs_input_grad[1]:  # no gradient reached the KL", "        elif False:  # no gradient reached the KL"),
      ["tests/test_engine_outputs.py"], "a learnable prior given no gradient when only the sample took one"),
    M("cuda-gumbel-quad-block-off-by-one", "kernels/gumbel_softmax.cu",
      ("+ (unsigned)quads.j(4 * u) / 4;", "+ (unsigned)quads.j(4 * u) / 4 + 1;"),
      [CUDA + "::test_gumbel_softmax_noise_matches_the_numpy_stream"], "a quad takes the next quad's Philox block"),
    M("cuda-philox-blocks-counter-mixed", "kernels/philox.cuh", ("        c[2][b] = c[3][b] = 0u;", "        c[2][b] = c[3][b] = (uint32_t)b;"),
      [CUDA + "::test_gumbel_softmax_noise_matches_the_numpy_stream"], "the blocks a thread makes together after its first get another counter"),
    M("cuda-gumbel-quads-of-any-k", "minivae/_gpu/gumbel.py", (" and k % 4 == 0 and all(", " and all("),
      [CUDA + "::test_gumbel_softmax_noise_matches_the_numpy_stream"], "rows of k = 2 mod 4 by quads: Philox blocks straddle them"),
    M("cuda-gumbel-quad-ties-to-last", "kernels/gumbel_softmax.cu",
      ("for (int t = 0; t < V; ++t)  // j increases", "for (int t = V - 1; t >= 0; --t)  // j increases"),
      [CUDA + "::test_gumbel_softmax_hard_ties_go_to_the_lowest_index"], "a thread's argmax takes its last tied quad element"),
    M("cuda-gumbel-quads-unaligned", "minivae/_gpu/gumbel.py", (" and all(address(a) % 16 == 0 for a in arrays)", ""),
      [CUDA + "::test_gumbel_softmax_rows_off_a_16_byte_boundary_go_element_by_element"],
      "16-byte loads from Gumbel rows off a 16-byte boundary"),
    M("cuda-gumbel-quads-too-few-threads", "minivae/_gpu/gumbel.py", ("32 * -(-k // (32 * v))", "32 * -(-k // (64 * v))"),
      [CUDA + "::test_gumbel_softmax_noise_matches_the_numpy_stream"], "a quads block too narrow for its row: the row's end is never drawn"),
    M("cuda-gumbel-pick-swapped", "kernels/philox.cuh",
      ("const float e = pick(high, e_t, e_low), f = pick(high, f_t, fmaf(e_low - 1.0f, t, -e_low));",
       "const float e = pick(high, e_low, e_t), f = pick(high, fmaf(e_low - 1.0f, t, -e_low), f_t);"),
      ["tests/test_kernel_sources.py"], "float32 Gumbel noise takes the low half's logarithm for words of the high half"),
    M("cuda-gemm-count-never-wraps", "kernels/gemm.cu",
      ("atomicInc(&slices_done[tile], gridDim.z - 1) == gridDim.z - 1", "atomicAdd(&slices_done[tile], 1u) == gridDim.z - 1"),
      [CUDA + "::test_tiled_product_and_its_epilogue"], "a tile's count of finished slices not returned to 0: no block of the next split launch writes C"),
    M("cuda-gumbel-staged-row-unsynced", "kernels/gumbel_softmax.cu",
      ("            __syncthreads();  // softmax_block_global reads the values other threads staged\n", ""),
      [CUDA + "::test_the_cases_run_clean_under_the_sanitizers[thread-long-rows]"], "a row too long for registers: its softmax reads noisy logits other threads have not yet staged"),
    M("cuda-gemm-parked-barrier-dropped", "kernels/gemm.cu",
      ("        park();\n        __syncthreads();", "        park();"),
      [CUDA + "::test_the_cases_run_clean_under_the_sanitizers[thread]"], "a step multiplied before all its values are parked in shared memory"),
    M("cuda-gemm-step-barrier-dropped", "kernels/gemm.cu",
      ("        __syncthreads();  // every thread is done with the step before the next is parked over it\n", ""),
      [CUDA + "::test_the_cases_run_clean_under_the_sanitizers[thread]"], "the next step parked over values other threads still read"),
    M("cuda-gemm-rows-unguarded", "kernels/gemm.cu", ("ra[r] = i < m && la < end ?", "ra[r] = la < end ?"),
      [CUDA + "::test_the_cases_run_clean_under_the_sanitizers[address]"], "A read past its last row where a tile overhangs it"),
    M("cuda-gemm-slice-runs-past-k", "kernels/gemm.cu",
      ("const int first = blockIdx.z * kslice, end = k < first + kslice ? k : first + kslice;", "const int first = blockIdx.z * kslice, end = first + kslice;"),
      [CUDA + "::test_tiled_product_and_its_epilogue"], "the last slice of the inner dimension reads past k (the next row of A, of B)"),
    M("cuda-gemm-last-block-skips-a-slice", "kernels/gemm.cu", ("for (unsigned z = 1; z < gridDim.z; ++z) s[j] += __ldcg(", "for (unsigned z = 2; z < gridDim.z; ++z) s[j] += __ldcg("),
      [CUDA + "::test_tiled_product_and_its_epilogue"], "the last block of a tile adds every slice's partial sums but one"),
    M("cuda-gemm-vector-sum-skips-a-slice", "kernels/gemm.cu", ("            for (unsigned z = 1; z < gridDim.z; ++z) {\n                T v[4];", "            for (unsigned z = 2; z < gridDim.z; ++z) {\n                T v[4];"),
      [CUDA + "::test_tiled_product_and_its_epilogue"], "rows of 4·q values: the last block adds every slice's partial sums but one"),
    M("cuda-gemm-vector-epilogue-dropped", "kernels/gemm.cu", ("                for (int j = 0; j < 4; ++j) v[j] = dense_epilogue(v[j], bias, j0 + j, epilogue);\n", ""),
      [CUDA + "::test_tiled_product_and_its_epilogue"], "rows of 4·q values written by vectors without their bias and ReLU"),
    M("cuda-gemm-vector-past-the-row", "kernels/gemm.cu", ("        if (i >= m || j0 >= n) return;", "        if (i >= m) return;"),
      [CUDA + "::test_tiled_product_and_its_epilogue"], "a thread whose columns lie past n writes a vector over the next row's first values"),
    M("cuda-gemm-vectors-at-any-address", "kernels/gemm.cu", ("const bool whole = n % 4 == 0 && vectorizable(4, c, parts);", "const bool whole = n % 4 == 0;"),
      [CUDA + "::test_the_cases_run_clean_under_the_sanitizers[address]"], "16-byte stores into an output off a 16-byte boundary (a misaligned-address fault on a GPU)"),
    M("cuda-gemm-relu-before-bias", "kernels/gemm.cu",
      ("    if (epilogue != 0) v += bias[j];\n    return dense_act(v, epilogue == MINIVAE_GEMM_BIAS_RELU);",
       "    v = dense_act(v, epilogue == MINIVAE_GEMM_BIAS_RELU);\n    return epilogue != 0 ? v + bias[j] : v;"),
      [CUDA + "::test_tiled_product_and_its_epilogue"], "the ReLU applied to the product before the bias is added"),
    M("cuda-gemm-transposed-b-indexed-as-rows", "kernels/gemm.cu", ("const long long at_b = B_ROWS ? lb * ldb + j : j * ldb + lb;", "const long long at_b = lb * ldb + j;"),
      [CUDA + "::test_tiled_product_and_its_epilogue"], "a transposed B (a VJP's Wᵀ) read as if row-major"),
    M("cuda-gemm-gate-of-b-ignored", "kernels/gemm.cu", ("if (gated == MINIVAE_GEMM_GATE_B && j < n && lb < end) rb[r] *=", "if (false) rb[r] *="),
      [CUDA + "::test_tiled_product_through_a_gate_with_column_sums"], "W̄ = xᵀ·ḡ and b̄ made of ḡ, not of ḡ·[y > 0]: the ReLU's gradient lost"),
    M("cuda-gemm-gate-open-at-zero", "kernels/gemm.cu", ("ra[r] *= (T)(gate[at_a] > T(0));", "ra[r] *= (T)(gate[at_a] >= T(0));"),
      [CUDA + "::test_tiled_product_through_a_gate_with_column_sums"], "the gate open where y = 0 (the ReLU's gradient is 0 there, as relu_bwd's)"),
    M("cuda-gemm-column-sums-skip-a-slice", "kernels/gemm.cu", ("for (unsigned z = 1; z < gridDim.z; ++z) s += __ldcg(col_parts", "for (unsigned z = 2; z < gridDim.z; ++z) s += __ldcg(col_parts"),
      [CUDA + "::test_tiled_product_through_a_gate_with_column_sums"], "b̄ of a split launch without one slice's column sums"),
    M("cuda-gemm-column-sums-lose-a-row", "kernels/gemm.cu", ("for (int r = 1; r < COL_THREADS; ++r) s += as[r][t];", "for (int r = 1; r < COL_THREADS - 1; ++r) s += as[r][t];"),
      [CUDA + "::test_tiled_product_through_a_gate_with_column_sums"], "a block's column sums without the last quarter of its threads' rows"),
    M("cuda-gemm-column-sums-barrier-dropped", "kernels/gemm.cu", ("        as[t / TILE][t % TILE] = cs;\n        __syncthreads();", "        as[t / TILE][t % TILE] = cs;"),
      [CUDA + "::test_the_cases_run_clean_under_the_sanitizers[thread]"], "a column's partial sums added before the other threads have parked theirs"),
    M("tiled-gated-operand-read-transposed", "minivae/_gpu/tiled.py", ("        gate, operand = contiguous(gate), contiguous(operand)", "        gate = contiguous(gate)"),
      [CUDA + "::test_tiled_product_through_a_gate_with_column_sums"], "a transposed ḡ read through a gate indexed as C-contiguous: the gate of other elements"),
    M("tiled-launch-shape-kept-without-its-split", "minivae/_gpu/tiled.py", ("    key = (m, n, k, lda, ldb, cut, epilogue, gated, sums, itemsize)", "    key = (m, n, k, lda, ldb, epilogue, gated, sums, itemsize)"),
      [TIMING], "a product launched with the grid and slice length of the first split its shape took, whichever it was given"),
    M("tiled-launch-shape-kept-without-its-flags", "minivae/_gpu/tiled.py", ("    key = (m, n, k, lda, ldb, cut, epilogue, gated, sums, itemsize)", "    key = (m, n, k, lda, ldb, cut, itemsize)"),
      ["tests/test_gpu_launchers.py", CUDA + "::test_tiled_product_through_a_gate_with_column_sums"], "a product of one shape given the epilogue, gate and column-sum flags of the first launched at it"),
    M("tiled-launch-shape-kept-without-its-itemsize", "minivae/_gpu/tiled.py", ("    key = (m, n, k, lda, ldb, cut, epilogue, gated, sums, itemsize)", "    key = (m, n, k, lda, ldb, cut, epilogue, gated, sums)"),
      ["tests/test_gpu_launchers.py::test_a_tiled_launch_takes_the_split_of_its_own_dtype"], "a float64 product given the split kept for a float32 one of its shape, whose partial sums overrun the buffer"),
    M("tiled-parts-without-column-sums", "minivae/_gpu/tiled.py", ("PARTS_BYTES // max(1, (m + 1) * n * itemsize)", "PARTS_BYTES // max(1, m * n * itemsize)"),
      ["tests/test_gpu_launchers.py::test_the_inner_dimension_splits_into_whole_steps_that_cover_it"], "a split whose column sums run past the partial sums' buffer"),
    M("linear-grads-w-ungated", "minivae/_gpu/gemm.py", ("gw = tiled.product(x.T, g, gate_b=y, b_sums=gb)", "gw = tiled.product(x.T, g, b_sums=gb)"),
      ["tests/test_device.py::test_a_dense_layer_through_the_emulated_cuda_kernels"], "a ReLU layer's W̄ and b̄ of ḡ, not of ḡ·[y > 0], on the tiled path"),
    M("tiled-transposed-operand-leading-dimension", "minivae/_gpu/tiled.py", ("return x.T, False, max(1, x.shape[0])", "return x.T, False, max(1, x.shape[1])"),
      [CUDA + "::test_tiled_product_and_its_epilogue"], "a transposed view's leading dimension taken from the wrong axis"),
    M("cuda-gaussian-gradient-halves-written-contiguous", "kernels/gaussian.cu",
      ("const long long at = row_strided(i, cols, ld_g);", "const long long at = i;"),
      [CUDA + "::test_reparameterization_and_kl_as_one_pair"], "μ̄ and v̄ written as contiguous arrays into the halves of one: rows overlap"),
    M("cuda-normal-pair-second-value-reused", "kernels/gaussian.cu",
      ("reparameterize_kl_elem(mu, log_var, (T)second, z, kl, i + 1,", "reparameterize_kl_elem(mu, log_var, (T)first, z, kl, i + 1,"),
      [CUDA + "::test_the_pair_with_its_noise_drawn_in_the_kernel"], "the sample's odd elements made from the pair's first normal instead of its second"),
    M("cuda-normal-pair-ignores-the-graph-advance", "kernels/gaussian.cu", ("    offset += *shift;\n", ""),
      [CUDA + "::test_kernels_in_a_graph_take_the_counter_advance_and_adam_scalars_from_memory"], "a CUDA graph's Gaussian noise the same at every replay"),
    M("gaussian-halves-joined-in-either-order", "minivae/_gpu/__init__.py",
      ("return (rows, 2 * cols) if address(right) == address(left) + cols * size else None",
       "return (rows, 2 * cols) if abs(address(right) - address(left)) == cols * size else None"),
      ["tests/test_gpu_launchers.py::test_the_gaussian_pair_reads_column_slices_in_place"], "a split's gradients joined as one array when the right one comes first: x̄ with its halves swapped"),
    M("cuda-bias-tile-count-never-wraps", "kernels/linear.cu",
      ("atomicInc(&bias_grad_groups_done[blockIdx.x], gridDim.y - 1) == gridDim.y - 1", "atomicAdd(&bias_grad_groups_done[blockIdx.x], 1u) == gridDim.y - 1"),
      [CUDA + "::test_bias_gradient_in_row_groups"], "a tile's count of finished groups not returned to 0: no block of the next launch writes b̄"),
    M("cuda-bias-last-block-barrier-dropped", "kernels/linear.cu",
      ("        partial[threadIdx.y][threadIdx.x] = t;\n        __syncthreads();\n", "        partial[threadIdx.y][threadIdx.x] = t;\n"),
      [CUDA + "::test_the_cases_run_clean_under_the_sanitizers[thread]"], "the last block adds its threads' shared sums before they are all written"),
    M("cuda-bias-last-block-skips-a-group", "kernels/linear.cu",
      ("for (unsigned r = threadIdx.y; r < gridDim.y;", "for (unsigned r = threadIdx.y + 1; r < gridDim.y;"),
      [CUDA + "::test_bias_gradient_in_row_groups"], "the last block adds all groups' sums but one"),
    M("cuda-group-dead-row-writes", "kernels/categorical_kl.cu",
      ("        if (lane == 0 && row < rows) kl[row] = total;", "        if (lane == 0) kl[row] = total;"),
      [CUDA + "::test_the_cases_run_clean_under_the_sanitizers[address]"], "a row past the end of a live warp writes its KL"),
    M("gpu-row-groups-per-block-ignored", "minivae/_gpu/__init__.py",
      ("    per_block = ROWS_PER_WARP_BLOCK * (32 // lanes)", "    per_block = ROWS_PER_WARP_BLOCK"),
      ["tests/test_gpu_launchers.py"], "rows of L < 32 lanes launch 32/L times the blocks they need"),
    # ---- optimizers --------------------------------------------------------------------------
    M("adam-bias-correction-off-by-one", "minivae/optim/__init__.py", ("(1 - b1 ** self.steps)", "(1 - b1 ** (self.steps + 1))"),
      ["tests/test_nn_optim.py"] + OPTIM_K, "off-by-one step counter"),
    M("adam-reference-second-moment", "minivae/optim/__init__.py", ("v += (1 - b2) * g * g", "v += (1 - b2) * g"),
      ["tests/test_nn_optim.py"] + OPTIM_K, "g for g²"),
    M("sgd-reference-momentum-sign", "minivae/optim/__init__.py", ("        v *= mu\n        v += g", "        v *= mu\n        v -= g"),
      ["tests/test_nn_optim.py"] + OPTIM_K, "wrong sign"),
    # ---- estimators and objectives -----------------------------------------------------------
    M("score-function-baseline-sign", "minivae/estimators.py", ("score = (fz.detach() - baseline) * log_q", "score = (fz.detach() + baseline) * log_q"),
      [ESTIMATOR_VALUES], "wrong sign"),
    M("score-function-value-shifted", "minivae/estimators.py", ("    return fz + score - score.detach()", "    return fz + score"),
      [ESTIMATOR_VALUES], "the surrogate's value is not E f"),
    M("pathwise-without-rsample", "minivae/estimators.py", ("return f(q.rsample(sample_shape, rng=rng))", "return f(q.sample(sample_shape, rng=rng))"),
      [ESTIMATOR_VALUES], "no path for the gradient"),
    M("straight-through-soft-forward", "minivae/estimators.py", ("rsample(sample_shape, rng=rng, hard=True)", "rsample(sample_shape, rng=rng, hard=False)"),
      [ESTIMATOR_VALUES], "the soft sample forward"),
    M("exact-detached-weights", "minivae/estimators.py", ("return (ops.exp(log_q) * f(z)).sum(axis=0)", "return (ops.exp(log_q.detach()) * f(z)).sum(axis=0)"),
      [ESTIMATOR_VALUES, "tests/test_estimators.py::test_exact_estimator_matches_enumeration_by_hand"], "a missing gradient path"),
    M("elbo-kl-sign", "minivae/objectives.py", ("return reconstruction - beta * kl_divergence(q, model.prior()).sum(axis=-1)",
                                                "return reconstruction + beta * kl_divergence(q, model.prior()).sum(axis=-1)"),
      ["tests/test_objectives_models.py"], "wrong sign"),
    M("iwae-missing-log-k", "minivae/objectives.py", ("    return ops.logsumexp(log_w, axis=0) - math.log(k)\n", "    return ops.logsumexp(log_w, axis=0)\n"),
      ["tests/test_objectives_models.py"], "a missing term"),
    M("log-weight-q-sign", "minivae/objectives.py", ("            - q.log_prob(z).sum(axis=-1))", "            + q.log_prob(z).sum(axis=-1))"),
      ["tests/test_objectives_models.py"], "wrong sign"),
    M("enumerate-one-hot-wrong-axis", "minivae/objectives.py", ("numpy.indices((k,) * n).reshape(n, -1).T", "numpy.indices((k,) * n).reshape(-1, n)"),
      ["tests/test_objectives_models.py", ESTIMATOR_VALUES], "wrong axis"),
    # ---- the Philox stream (the NumPy reference) -----------------------------------------------
    M("philox-round-count", "minivae/random.py", ("def philox4x32(counter, key, rounds=10):", "def philox4x32(counter, key, rounds=9):"),
      ["tests/test_random.py"], "Philox4x32-9"),
    M("philox-key-schedule", "minivae/random.py", ("k0, k1 = (k0 + _W0) & _MASK, (k1 + _W1) & _MASK", "k0, k1 = (k0 + _W1) & _MASK, (k1 + _W0) & _MASK"),
      ["tests/test_random.py"], "swapped key-schedule constants"),
    M("philox-word-overwritten-before-read", "minivae/random.py",
      ("        c0 ^= c1\n        c0 ^= k0\n        xp.bitwise_and(p1, mask, out=c1)\n",
       "        xp.bitwise_and(p1, mask, out=c1)\n        c0 ^= c1\n        c0 ^= k0\n"),
      ["tests/test_random.py"], "the in-place round reads a word it already overwrote"),
    M("generator-counter-reuses-block", "minivae/random.py", ("        first = self._take((n + 3) // 4)\n", "        first = self._take(n // 4)\n"),
      ["tests/test_random.py", TIES], "noise reused (the counter advances one block short)"),
    M("philox-graph-shift-ignored", "kernels/random.cu",
      ("unsigned long long offset, const unsigned long long* __restrict__ shift) {\n    offset += *shift;\n    for (long long b = grid_first(); b < (n + 3) / 4; b += grid_step()) {\n        const PhiloxWords w = philox_block(seed, offset + (unsigned long long)b);\n#pragma unroll\n        for (int q = 0; q < 4; ++q)\n            if (4 * b + q < n) out[4 * b + q] = uniform_as",
       "unsigned long long offset, const unsigned long long* __restrict__ shift) {\n    for (long long b = grid_first(); b < (n + 3) / 4; b += grid_step()) {\n        const PhiloxWords w = philox_block(seed, offset + (unsigned long long)b);\n#pragma unroll\n        for (int q = 0; q < 4; ++q)\n            if (4 * b + q < n) out[4 * b + q] = uniform_as"),
      [f"{CUDA}::test_kernels_in_a_graph_take_the_counter_advance_and_adam_scalars_from_memory"],
      "a CUDA graph's uniforms repeat at every launch"),
    M("adam-graph-scalars-ignored", "kernels/optim.cu", ("    if (!isnan(step[0])) {", "    if (false) {"),
      [f"{CUDA}::test_kernels_in_a_graph_take_the_counter_advance_and_adam_scalars_from_memory"],
      "a CUDA graph's Adam keeps the captured step's bias correction"),
    M("linear-bias-indexed-by-row", "kernels/linear.cu", ("y[i] = dense_act(y[i] + b[i % cols], relu);", "y[i] = dense_act(y[i] + b[i / cols], relu);"),
      [f"{CUDA}::test_dense_layer_bias_activation_and_relu_vjp"], "each row gets one bias value instead of each column its own"),
    M("cuda-bias-grad-drops-a-row-group", "kernels/linear.cu", ("for (int r = 1; r < MINIVAE_BIAS_ROWS; ++r) s +=", "for (int r = 2; r < MINIVAE_BIAS_ROWS; ++r) s +="),
      [f"{CUDA}::test_dense_layer_bias_activation_and_relu_vjp", "tests/test_device.py::test_one_training_step_through_the_emulated_cuda_kernels"],
      "b̄ misses the rows of one of a block's 16 row groups"),
    M("gpu-bias-groups-one-too-few", "minivae/_gpu/linear.py", ("    groups = -(-rows // chunk)  # no empty group", "    groups = rows // chunk"),
      [f"{CUDA}::test_bias_gradient_in_row_groups"], "rows rounded down into groups: the last, partial group never launched"),
    M("gemm-tf32-mode-left-on", "minivae/_gpu/gemm.py", ("        cublas.setMathMode(handle, previous)\n", "        pass\n"),
      ["tests/test_matmul_precision.py"], "a user's own cupy.matmul silently turned to TF32 after minivae's first product"),
    M("gemm-eager-stream-not-set", "minivae/_gpu/gemm.py", ("        cublas.setStream(handle, cupy.cuda.get_current_stream().ptr)\n", ""),
      ["tests/test_matmul_precision.py"], "an eager TF32 product queued on whatever stream the handle last had"),
    M("gemm-tf32-for-float64", "minivae/_gpu/gemm.py", ("    tf32 = a.dtype == numpy.float32 and get_float32_matmul_precision() == \"high\"",
                                                        "    tf32 = get_float32_matmul_precision() == \"high\""),
      ["tests/test_matmul_precision.py"], "double-precision products rounded to TF32"),
    M("lt-output-leading-dimension-batch", "minivae/_gpu/gemm.py", ("(k, m, ld_x) if op_x == OP_N else (m, k, ld_x), (n, m, n)):", "(k, m, ld_x) if op_x == OP_N else (m, k, ld_x), (n, m, m)):"),
      ["tests/test_cublaslt.py"], "the layer's output laid out with the batch as its leading dimension"),
    M("lt-relu-dropped", "minivae/_gpu/gemm.py", ("EPILOGUE_DEFAULT if bias is None else EPILOGUE_RELU_BIAS if relu else EPILOGUE_BIAS", "EPILOGUE_DEFAULT if bias is None else EPILOGUE_BIAS"),
      ["tests/test_cublaslt.py"], "a ReLU layer's epilogue adds the bias only"),
    M("lt-tf32-ignored", "minivae/_gpu/gemm.py", ("COMPUTE_32F_FAST_TF32 if tf32 else COMPUTE_32F,", "COMPUTE_32F,"),
      ["tests/test_cublaslt.py"], "precision 'high' ignored by the fused layers"),
    M("lt-alignment-assumed", "minivae/_gpu/gemm.py", ("*(_alignment(_gpu.address(a)) for a in (w, x2, y))", "*(256 for a in (w, x2, y))"),
      ["tests/test_cublaslt.py"], "an algorithm found for 256-byte aligned matrices used on less aligned ones"),
    M("lt-bias-pointer-of-the-first-layer", "minivae/_gpu/gemm.py", ("    _set(lib.cublasLtMatmulDescSetAttribute, desc, DESC_BIAS_POINTER, ctypes.c_void_p(_gpu.address(bias)))\n    one, zero", "    one, zero"),
      ["tests/test_cublaslt.py"], "every layer of one shape adds the bias of the first"),
    M("lt-transposes-swapped", "minivae/_gpu/gemm.py", ("desc, DESC_TRANSA, ctypes.c_int32(op_w))", "desc, DESC_TRANSA, ctypes.c_int32(op_x))"),
      ["tests/test_cublaslt.py"], "a transposed weight read as stored"),
    M("lt-unaligned-bias-taken", "minivae/_gpu/gemm.py", ("_alignment(_gpu.address(bias)) < 16:", "_alignment(_gpu.address(bias)) < 1:"),
      ["tests/test_cublaslt.py"], "a bias under 16-byte alignment given to cuBLASLt (a misaligned-address fault on some GPUs)"),
    M("side-keeps-only-its-output", "minivae/_gpu/gemm.py", ("        self.kept.append((a, b, out, gate_b, b_sums))", "        self.kept.append((out, b_sums))"),
      ["tests/test_side_stream.py"], "a queued product's inputs freed to the pool, whose next arrays overwrite them before the side stream reads them"),
    M("side-forgets-the-gradient-it-reads", "minivae/_gpu/gemm.py", ("        self.kept.append((a, b, out, gate_b, b_sums))", "        self.kept.append((a, out, gate_b, b_sums))"),
      ["tests/test_side_stream.py"], "p̄, made inside the VJP and held by nothing else, freed while W̄'s product still reads it"),
    M("side-output-read-before-the-join", "minivae/plan.py", ("(reads is None or side.makes([values[k] for k in reads])):", "reads is None:"),
      ["tests/test_side_stream.py"], "a tied weight's two W̄ summed before the side stream made them"),
    M("side-closed-during-a-capture", "minivae/_gpu/gemm.py", ("    if _gpu.capture is not None:\n        _retired.append(parts)", "    if False:\n        _retired.append(parts)"),
      ["tests/test_side_stream.py"], "a graph the collector frees mid-capture destroys its cuBLAS handle then (it invalidated the capture on an H100)"),
    M("side-closed-before-its-graph", "minivae/_gpu/gemm.py", ("    parts[0] = None  # the graph first (the caller holds the list, not the graph)\n    parts[1].close()", "    parts[1].close()\n    parts[0] = None"),
      ["tests/test_side_stream.py"], "the side handle destroyed while the graph that uses its workspace lives"),
    M("side-workspace-4mib-on-hopper", "minivae/_gpu/gemm.py", ("    return (32 if major >= 9 else 4) << 20", "    return (32 if major > 9 else 4) << 20"),
      ["tests/test_side_stream.py"], "the side handle's workspace 4 MiB on an H100 (its products at batch 4096 were then slower than the main stream's)"),
    M("side-no-fork", "minivae/_gpu/gemm.py", ("        self._fork()\n        self._launch(a, b, out, gate_b, b_sums)", "        self._launch(a, b, out, gate_b, b_sums)"),
      ["tests/test_side_stream.py"], "a product on the side stream that does not wait for the main stream's p̄"),
    M("side-sums-not-an-output", "minivae/_gpu/gemm.py", ("        for made in (out, b_sums):\n            if made is not None:\n                self.outputs.add", "        for made in (out,):\n            if made is not None:\n                self.outputs.add"),
      ["tests/test_side_stream.py"], "b̄ made by a side product (MINIVAE_GEMM=tiled) read before the join: a tied bias's two b̄ summed early"),
    M("lt-heuristics-first-kept", "minivae/_gpu/timing.py", ("    return candidates[0 if best is None else best], times", "    return candidates[0], times"),
      ["tests/test_cublaslt.py", TIMING], "the candidates timed, then the first used anyway"),
    M("lt-timed-in-a-capture", "minivae/_gpu/timing.py", ("    if len(candidates) == 1 or _gpu.capture is not None:", "    if len(candidates) == 1:"),
      ["tests/test_cublaslt.py", TIMING], "kernels timed while a capture records them (nothing runs: the times are meaningless)"),
    M("lt-timed-every-call", "minivae/_gpu/gemm.py", ('    if plan["algo"] is None:', "    if True:"),
      ["tests/test_cublaslt.py"], "every product timed again, a synchronization at each call"),
    M("lt-one-workspace-for-all-streams", "minivae/_gpu/gemm.py", ("    key = (cupy.cuda.get_device_id(), stream)", "    key = cupy.cuda.get_device_id()"),
      ["tests/test_cublaslt.py"], "two streams' products share one workspace"),
    M("lt-plain-products-not-taken", "minivae/_gpu/gemm.py", ("    if use_lt and b.ndim == 2 and a.ndim >= 2:", "    if False:"),
      ["tests/test_cublaslt.py"], "the switch covers the dense layers' forward only"),
    M("graph-values-overwritten-before-copied", "minivae/_gpu/graph.py", ("            self.events[i].synchronize()  # the copy", "            pass  # the copy"),
      ["tests/test_launch_values.py"], "a pinned buffer rewritten while its copy is still queued: a launch reads the next step's Adam scalars"),
    M("train-recorded-only-setting-ignored-on-resume", "minivae/training.py",
      ("    keys = [*now, *(k for k in recorded if k not in now)]", "    keys = list(now)"),
      ["tests/test_device.py::test_tf32_is_a_setting_of_a_gpu_run"], "a --tf32 run resumed without TF32, silently"),
    M("train-tf32-left-on-after-the-run", "minivae/training.py", ("        set_float32_matmul_precision(precision)\n", "        pass\n"),
      ["tests/test_device.py::test_tf32_is_a_setting_of_a_gpu_run"], "the process's products stay TF32 after train() returns"),
    M("linear-frozen-bias-relu-mask-from-the-gradient", "minivae/ops/linalg.py", ("g = kernel.relu_bwd(g, ctx.y)", "g = kernel.relu_bwd(g, g)"),
      ["tests/test_device.py::test_a_dense_layer_through_the_emulated_cuda_kernels"], "a frozen-bias ReLU layer masked where ḡ > 0, not y > 0"),
    M("linear-fused-bias-grad-without-relu", "minivae/ops/linalg.py", ("g, gb = kernel.bias_grad(g, ctx.y)", "g, gb = kernel.bias_grad(g, None)"),
      ["tests/test_device.py::test_one_training_step_through_the_emulated_cuda_kernels"], "a ReLU layer's backward on the GPU ignores the ReLU"),
    M("elbo-block-count-never-reset", "kernels/elbo.cu",
      ("last = atomicInc(&negative_elbo_blocks_done, gridDim.x - 1) == gridDim.x - 1;", "last = atomicAdd(&negative_elbo_blocks_done, 1u) == gridDim.x - 1;"),
      [f"{CUDA}::test_negative_elbo_forward_and_backward"], "the next launch's last block never knows it is last"),
    M("elbo-last-block-adds-one-partial", "kernels/elbo.cu",
      ("for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x)", "for (unsigned b = threadIdx.x; b < 1; b += blockDim.x)"),
      [f"{CUDA}::test_negative_elbo_forward_and_backward"], "the loss of a batch of many blocks is the first block's share"),
    M("elbo-bwd-likelihood-value-unwritten", "kernels/elbo.cu", ("    if (grid_first() == 0) *gll = -s;", "    if (grid_first() < 0) *gll = -s;"),
      [f"{CUDA}::test_negative_elbo_forward_and_backward"], "the one value the likelihood's broadcast gradient shows is never written"),
    M("elbo-formula-on-the-gpu", "minivae/ops/losses.py", ('kernel = None if xp is numpy else ctx.fused("elbo", ll, kl, beta)', "kernel = None"),
      ["tests/test_launch_count.py"], "the same loss in eleven launches instead of two (only the count shows it)"),
    M("elbo-vjp-kl-without-beta", "minivae/ops/losses.py", ("xp.broadcast_to(-s, ctx.ll_shape), xp.broadcast_to(s * ctx.beta, ctx.kl_shape)",
                                                                 "xp.broadcast_to(-s, ctx.ll_shape), xp.broadcast_to(s, ctx.kl_shape)"),
      gc("negative_elbo"), "β left out of the KL's gradient"),
    M("arith-mul-gradient-to-the-wrong-input", "minivae/ops/arith.py",
      ("unbroadcast(g * y, x.shape) if nx else None, unbroadcast(g * x, y.shape) if ny else None", "unbroadcast(g * y, x.shape) if ny else None, unbroadcast(g * x, y.shape) if nx else None"),
      gc("mul") + ["tests/test_engine.py::test_a_constant_operand_gets_no_gradient_computed"], "a constant factor's flag decides the other input's gradient"),
    M("arith-sub-constant-gradient-computed", "minivae/ops/arith.py", ("-unbroadcast(g, ctx.yshape) if ny else None", "-unbroadcast(g, ctx.yshape)"),
      ["tests/test_engine.py::test_a_constant_operand_gets_no_gradient_computed"], "a constant's gradient computed for nothing"),
    M("categorical-prior-row-always-first", "minivae/_cpu/categorical.py", ("pr = r % prior.shape[0]", "pr = 0"),
      [f"{CPU_KERNELS}::test_categorical_kl_kernel_matches_the_reference"], "every latent variable gets the first one's prior"),
    M("cuda-categorical-prior-not-normalized", "kernels/common.cuh", ("return log_q - ((lp[j] - mp) - log_sp);", "return log_q - lp[j];"),
      [f"{CUDA}::test_categorical_kl"], "the prior's logits taken for log-probabilities"),
    M("categorical-prior-rows-misread", "minivae/ops/losses.py", ("if trailing == shape[len(shape) - len(trailing):] and math.prod(trailing):", "if math.prod(trailing):"),
      [f"{CPU_KERNELS}::test_categorical_kl_kernel_matches_the_reference"], "a per-example prior read as a per-variable one"),
    M("cuda-gaussian-log-var-read-with-mu-stride", "kernels/gaussian.cu",
      ("const T m = mu[row_strided(i, cols, ld_mu)], v = log_var[row_strided(i, cols, ld_v)];", "const T m = mu[row_strided(i, cols, ld_mu)], v = log_var[row_strided(i, cols, ld_mu)];"),
      [f"{CUDA}::test_reparameterization_and_kl_as_one_pair"], "log σ² read with μ's row stride"),
    M("gpu-row-stride-taken-as-row-length", "minivae/_gpu/__init__.py", ("        ld = a.strides[0] // a.itemsize\n", "        ld = a.shape[1]\n"),
      [f"{CUDA}::test_reparameterization_and_kl_as_one_pair", "tests/test_gpu_launchers.py"], "a column slice read as if contiguous"),
    M("split-vjp-pieces-reversed", "minivae/ops/shape.py", ("for g, shape in zip(gs, ctx.shapes)]", "for g, shape in zip(gs[::-1], ctx.shapes)]"),
      gc("split"), "each piece's gradient lands in another piece's place"),
    # ---- step plans (record once, replay) --------------------------------------------------------
    M("plan-counter-not-live", "minivae/plan.py", ('return Live(counter, lambda: rng._take(blocks), "Philox counter", "counter")', "return counter"),
      ["tests/test_plan.py"], "every replay draws the recorded step's Gumbel noise"),
    M("plan-draw-not-replayed", "minivae/plan.py", ("            values[k] = getattr(rng, method)(*args, **kwargs)", "            pass"),
      ["tests/test_plan.py"], "every replay reuses the recorded step's Gaussian noise"),
    M("plan-live-constant-not-refilled", "minivae/plan.py", ("            a.fill(x.resolve())", "            pass"),
      ["tests/test_plan.py"], "β stays at its recorded value"),
    M("plan-live-param-frozen", "minivae/plan.py", ("{k: v.resolve() for k, v in lives}", "{k: v.value for k, v in lives}"),
      ["tests/test_plan.py"], "τ stays at its recorded value"),
    M("plan-no-shape-check", "minivae/plan.py", ("                if r.shape != shape:", "                if False:"),
      ["tests/test_plan.py"], "a data-dependent shape replays silently"),
    M("engine-comparison-not-recorded", "minivae/engine.py", ("        _recorder.call(fn, arrays, [o.data for o in outs])", "        pass"),
      ["tests/test_plan.py"], "a mask or a sample's argmax is replayed as a constant"),
    M("relaxed-sample-normalizes-logits", "minivae/distributions/relaxed.py",
      ("            logits = ops.broadcast_to(self._given_logits, self._extended(sample_shape))", "            logits = ops.broadcast_to(self.logits, self._extended(sample_shape))"),
      ["tests/distributions/test_distributions.py"], "a log_softmax node (two GPU kernels) a step that the sample does not need"),
    M("gaussian-halves-copied", "minivae/_gpu/__init__.py", ("    if (a.ndim == 2 and a.size and", "    if (False and"),
      ["tests/test_device.py::test_the_gaussian_kernels_read_the_split_halves_in_place", "tests/test_gpu_launchers.py",
       "tests/test_launch_count.py"],
      "μ and log σ² copied in each pass (four kernel launches a step)"),
    M("plan-replay-outside-pool", "minivae/plan.py", ("        with self.pool:\n            for run, reads in", "        if True:\n            for run, reads in"),
      ["tests/test_plan.py"], "a replay allocates its arrays from the system again"),
    M("plan-old-grads-kept", "minivae/plan.py", ("            p.grad = None", "            pass"),
      ["tests/test_plan.py"], "the last step's gradients hold their memory while the next step makes new ones"),
    M("pool-calloc-not-zeroed", "minivae/_pool.py", ("        memset(p, 0, nelem * elsize)", "        pass"),
      ["tests/test_pool.py"], "numpy.zeros in a pool returns a reused block's old values"),
    M("pool-realloc-drops-values", "minivae/_pool.py", ("        memmove(p, ptr, min(owner[ptr][1], size))", "        pass"),
      ["tests/test_pool.py"], "a reallocated array loses its values"),
    M("pool-handler-not-restored", "minivae/_pool.py", ("            _set_handler(self._previous)", "            pass"),
      ["tests/test_pool.py"], "NumPy keeps allocating from the pool after the replay"),
    M("kernel-cache-ignores-device", "minivae/_gpu/loader.py", ("    kernel = _kernels.get((source, name, device))", "    kernel = _kernels.get((source, name, 0))"),
      ["tests/test_gpu_launchers.py"], "a kernel looked up on device 0 is launched on device 1"),
    M("kernel-looked-up-each-launch", "minivae/_gpu/loader.py", ("    kernel = _kernels.get((source, name, device))", "    kernel = None"),
      ["tests/test_gpu_launchers.py"], "every launch makes a new RawKernel and asks the driver for its function again"),
    M("cupy-cached-without-a-gpu", "minivae/_backend.py", ("        import cupy\n    except ImportError", "        import cupy\n        _cupy = cupy\n    except ImportError"),
      ["tests/test_gpu_launchers.py"], "CuPy is kept before a GPU was found: the second call skips the check"),
    M("contiguous-ignores-dtype", "minivae/_gpu/__init__.py", ("    if a.flags.c_contiguous and (dtype is None or a.dtype == dtype):", "    if a.flags.c_contiguous:"),
      ["tests/test_gpu_launchers.py"], "a contiguous array of another dtype reaches a kernel as it is"),
    M("gpu-step-rounds-in-one-order", "benchmarks/gpu_step.py", ("        for name in names[r % len(names):] + names[:r % len(names)]:", "        for name in names:"),
      ["tests/test_gpu_step_benchmark.py"], "--interleave times the implementations in one order every round: each always right after the same one"),
    M("gpu-step-ratio-of-medians", "benchmarks/gpu_step.py", ("    return statistics.median(x / y for x, y in zip(times[a], times[b]))", "    return statistics.median(times[a]) / statistics.median(times[b])"),
      ["tests/test_gpu_step_benchmark.py"], "a paired ratio taken as the ratio of the two medians"),
    M("device-constant-shared-across-streams", "minivae/_gpu/__init__.py", ("    where = (cuda.get_device_id(), cuda.get_current_stream().ptr) if cuda is not None else None", "    where = cuda.get_device_id() if cuda is not None else None"),
      ["tests/test_gpu_launchers.py"], "a constant filled on one stream is read on another, which does not wait for the fill"),
    M("device-constant-shared-across-devices", "minivae/_gpu/__init__.py", ("    where = (cuda.get_device_id(), cuda.get_current_stream().ptr) if cuda is not None else None", "    where = cuda.get_current_stream().ptr if cuda is not None else None"),
      ["tests/test_gpu_launchers.py"], "a constant on one GPU is handed to a kernel on another (streams of two devices may share a number)"),
    M("device-constant-kept-during-capture", "minivae/_gpu/__init__.py", ("    if capture is not None:\n        return xp.full(shape, value, like.dtype)\n", ""),
      ["tests/test_gpu_launchers.py"], "a constant first made in a capture is kept: its fill runs only when the graph does"),
    M("device-constant-keyed-by-number", "minivae/_gpu/__init__.py", ("shape, repr(value))", "shape, value)"),
      ["tests/test_gpu_launchers.py"], "−0.0 is handed 0.0's array (they compare equal)"),
    M("device-constants-unbounded", "minivae/_gpu/__init__.py", ("        if len(_constants) >= CONSTANTS:", "        if False:"),
      ["tests/test_gpu_launchers.py"], "an annealed β keeps a device array for every value it took"),
    M("shared-root-gradient-not-kept", "minivae/engine.py", ("        g = _root_grad(root, grad)\n        _keep(stored, g)", "        g = _root_grad(root, grad)\n        if grad is not None:\n            _keep(stored, g)"),
      ["tests/test_device.py"], "the shared ḡ = 1 (or a view of it) becomes a .grad: changing it in place changes every later backward's"),
    M("eager-number-filled-each-time", "minivae/engine.py", ("else device_constant(like.data, x)))", "else like.xp.full((), x, like.dtype)))"),
      ["tests/test_launch_count.py"], "β is filled on the device at every eager step"),
    M("eager-prior-zeros-each-step", "minivae/models.py", ("        prior = self._uniform_logits(shared=True)", "        prior = self._uniform_logits()"),
      ["tests/test_launch_count.py"], "the categorical prior's zero logits are allocated and filled at every eager step"),
    M("emulated-type-kept-as-cupy", "minivae/_backend.py", ("    if _emulation is not None and isinstance(array, _emulation[1]):\n        return True", "    if _emulation is not None and isinstance(array, _emulation[1]):\n        _cupy_types.add(kind)\n        return True"),
      ["tests/test_gpu_launchers.py"], "the tests' stand-in array type stays a GPU array after the emulation"),
    M("gradient-table-keyed-by-count", "minivae/_gpu/__init__.py", ("table.tobytes())", "len(table))"),
      ["tests/test_gpu_launchers.py"], "a cached gradient table is reused for other gradients' memory"),
    M("gradient-tables-unbounded", "minivae/_gpu/__init__.py", ("        if len(_tables) >= TABLES:", "        if False:"),
      ["tests/test_gpu_launchers.py"], "every address list ever seen keeps a device table"),
    # timing launches behind the hold (minivae/_gpu/timing.py, kernels/timing.cu) and the tuned tiled split
    M("timing-no-hold", "minivae/_gpu/timing.py", ("    hold(go, timed_out)\n", ""),
      [TIMING], "the candidates launched one by one as the host queues them: their times are the host's launch rate"),
    M("timing-go-kernel-loaded-while-held", "minivae/_gpu/timing.py", ("cupy.ones(1, numpy.uint32), cupy.zeros(1, numpy.uint32)", "cupy.zeros(1, numpy.uint32), cupy.zeros(1, numpy.uint32)"),
      [TIMING], "the kernel that sets go first launched while the hold runs: lazy loading may wait for the device to idle"),
    M("timing-no-warm-up", "minivae/_gpu/timing.py", ("    ok = [not run() for run in runs]", "    ok = [True for run in runs]"),
      [TIMING], "the first timed launch of each candidate loads its kernel and fills the caches"),
    M("timing-go-on-the-held-stream", "minivae/_gpu/timing.py", ("        with release:\n            go.fill(1)", "        go.fill(1)"),
      [TIMING], "go set by a launch queued behind the hold that waits for it: the stream stalls until the hold gives up"),
    M("timing-go-before-its-zero", "minivae/_gpu/timing.py", ("        release.wait_event(zeroed)  #", "        #"),
      [TIMING], "go's 1 may land before the held stream's 0: the hold then waits a second for nothing"),
    M("timing-release-stream-blocking", "minivae/_gpu/timing.py", ("cupy.cuda.Stream(non_blocking=True)", "cupy.cuda.Stream()"),
      [TIMING], "go set on a stream ordered after the legacy default stream's hold: a deadlock until the hold gives up"),
    M("timing-go-not-set-after-a-failure", "minivae/_gpu/timing.py",
      ("    finally:  # even if a launch failed", "    except RuntimeError:\n        raise\n    if True:  # even if a launch failed"),
      [TIMING], "a launch that raises leaves the GPU held until the hold gives up"),
    M("timing-failed-run-timed", "minivae/_gpu/timing.py", ("for _ in range(repeats if good else 0):", "for _ in range(repeats):"),
      [TIMING], "a candidate that failed to run launched again and again"),
    M("timing-timeout-ignored", "minivae/_gpu/timing.py", ("    if int(timed_out.get()[0]) or not any(ok):", "    if not any(ok):"),
      [TIMING], "times measured after the hold gave up (the host's launch rate) trusted"),
    M("cuda-hold-timeout-unreported", "kernels/timing.cu", ("            *timed_out = 1u;", "            *timed_out = 0u;"),
      [CUDA + "::test_the_timing_hold_waits_for_go_and_gives_up_after_its_cycles"], "a hold that gave up says nothing"),
    M("cuda-hold-go-inverted", "kernels/timing.cu", ("    while (*go == 0u) {", "    while (*go != 0u) {"),
      [CUDA + "::test_the_timing_hold_waits_for_go_and_gives_up_after_its_cycles"], "the hold waits while go is set"),
    M("launch-count-counts-timing", "tools/launch_count.py", ("(lt.timing or launches.append(", "(None, launches.append("),
      ["tests/test_launch_count.py::test_with_cublaslt_each_dense_layer_forward_is_one_call"],
      "the stand-in cuBLASLt's timing calls counted as a step's launches (a capture times nothing)"),
    M("tiled-tuned-split-not-kept", "minivae/_gpu/tiled.py", ("        entry = _tuned[key] = {", "        entry = {"),
      [TIMING], "every product timed again at every call, a synchronization each"),
    M("tiled-tuned-kept-untimed", "minivae/_gpu/tiled.py", ("        if times is None:\n            return choice\n", ""),
      [TIMING], "the guess a capture took untimed kept for good: the product never timed afterwards"),
    M("tiled-tuned-while-off", "minivae/_gpu/tiled.py", ("    if tune:\n        launch(", "    if True:\n        launch("),
      [TIMING], "splits timed and results changed with MINIVAE_GEMM_TUNE unset"),
    M("tiled-tuned-choice-not-launched", "minivae/_gpu/tiled.py", ("        launch(_tuned_split(xp,", "        (_tuned_split(xp,"),
      [TIMING], "C left as the last candidate timed wrote it, not the chosen split's (other bits, other sums)"),
    M("tiled-tuned-key-without-gate", "minivae/_gpu/tiled.py", ("epilogue, gated, b_sums is not None),\n", "epilogue),\n"),
      [TIMING], "a gated product with column sums takes the split timed for the plain product of its shape"),
    M("tiled-tuned-splits-overrun-the-parts", "minivae/_gpu/tiled.py",
      ("max(1, k // STEP), _most_slices(m, n, itemsize)):", "max(1, k // STEP)):"),
      [TIMING], "a timed split whose partial sums run past their buffer"),
    # ---- found by review, 2026-11-28: views' versions, integer results, where, pow, std, root ḡ, copies, plans ----
    M("engine-view-keeps-a-version-of-its-own", "minivae/engine.py", ("            out._counter = t._counter\n            return\n", "            return\n"),
      ["tests/test_engine.py::test_a_view_and_its_base_count_in_place_changes_together"], "a write through a slice's base after the forward pass: the old values' VJP, silently"),
    M("engine-detach-keeps-a-version-of-its-own", "minivae/engine.py", ("        out._counter = self._counter\n        return out\n", "        return out\n"),
      ["tests/test_engine.py::test_a_view_and_its_base_count_in_place_changes_together"], "w.detach().zero_() after the forward pass: a VJP of zeros, silently"),
    M("engine-integer-result-requires-grad", "minivae/engine.py", ('out.requires_grad = out.data.dtype.kind == "f"', "out.requires_grad = True"),
      ["tests/test_engine.py::test_an_integer_result_carries_no_gradient"], "a gradient of 3 through 3·long(x)"),
    M("where-other-branch-by-difference", "minivae/ops/arith.py",
      ("gx, gy = ctx.xp.where(ctx.cond, g, zero), ctx.xp.where(ctx.cond, zero, g)", "gx = ctx.xp.where(ctx.cond, g, zero); gy = g - gx"),
      ["tests/test_engine.py::test_where_gives_each_branch_only_its_own_upstream_gradient"], "an inf of ḡ where x was taken makes y's gradient NaN"),
    M("pow-zero-exponent-unmasked", "minivae/ops/arith.py", ("xp.where(y == 0, 0, y * x ** (y - 1))", "(y * x ** (y - 1))"),
      ["tests/test_engine.py::test_pow_takes_pytorch_s_gradients_at_zero"], "d(x⁰)/dx = 0·∞ = NaN at x = 0"),
    M("pow-exponent-gradient-unmasked-at-zero", "minivae/ops/arith.py", ("xp.where((x == 0) & (y >= 0), 0, z * xp.log(x))", "(z * xp.log(x))"),
      ["tests/test_engine.py::test_pow_takes_pytorch_s_gradients_at_zero"], "d(xʸ)/dy = 0·(−∞) = NaN at x = 0"),
    M("std-constant-slice-unmasked", "minivae/ops/reduce.py",
      ("xp.where(y == 0, 0, expand_reduced(g, ctx.d.shape, ctx.axes, ctx.keepdims) / (ctx.dof * y))",
       "(expand_reduced(g, ctx.d.shape, ctx.axes, ctx.keepdims) / (ctx.dof * y))"),
      ["tests/test_engine.py::test_std_of_a_constant_slice_has_gradient_zero"], "a constant row's std has a NaN gradient"),
    M("engine-root-gradient-keeps-its-dtype", "minivae/engine.py", ("grad.data.astype(root.dtype, copy=False) if isinstance(grad, Tensor)", "grad.data if isinstance(grad, Tensor)"),
      ["tests/test_engine.py::test_a_root_gradient_takes_the_root_s_dtype"], "an integer ḡ makes a float32 leaf's .grad integer"),
    M("tensor-shares-its-source", "minivae/engine.py",
      ("        return Tensor(_on_device(source, dtype, device, copy=True), requires_grad=requires_grad)",
       "        return Tensor(_on_device(source, dtype, device, copy=False), requires_grad=requires_grad)"),
      ["tests/test_engine.py::test_tensor_copies_and_as_tensor_shares"], "two leaves made from one array change together"),
    M("plan-setitem-index-of-the-recording", "minivae/plan.py", ("index.resolve() if isinstance(index, Live) else index)", "index.value if isinstance(index, Live) else index)"),
      ["tests/test_plan.py::test_an_in_place_write_replays_with_this_step_s_index_and_on_a_new_array"], "x[mask] = v replayed at the first batch's mask"),
    M("plan-creation-not-recorded", "minivae/creation.py", ("        engine._recorder.call(make, (), (data,))", "        pass"),
      ["tests/test_plan.py::test_an_in_place_write_replays_with_this_step_s_index_and_on_a_new_array"], "zeros() += x inside the step sums over the replays"),
    M("plan-refusal-lost-in-numpy", "minivae/plan.py", ("                raise _refusals[0] from error", "                raise"),
      ["tests/test_plan.py::test_a_refusal_raised_inside_numpy_reaches_the_caller"], "numpy.float32(beta) while recording: a SystemError, the refusal's reason lost"),
    M("gradcheck-upcast-keeps-fortran-order", "minivae/gradcheck.py", ('t.data.astype(numpy.float64, order="C")', "t.data.astype(numpy.float64)"),
      ["tests/test_gradcheck_tool.py::test_a_transposed_input_is_perturbed_where_the_function_reads_it"], "a transposed float32 input never perturbed: a correct op fails"),
    # ---- distributions, optimizers and modules, found by review, 2026-11-28 ----
    M('dist-categorical-probs-unnormalized', 'minivae/distributions/distribution.py', ('        p = p / p.sum(axis=-1, keepdims=True)', '        p = p'),
      ['tests/distributions/test_parameters.py::test_categorical_probs_are_normalized_by_the_row_sum'], 'probs [2, 6] taken as [0.5, 0.5] (each clamped to 1 − ε)'),
    M('dist-bernoulli-probs-above-one', 'minivae/distributions/distribution.py', ('            ok = (p.data >= 0) & (p.data <= 1)  # NaN fails both comparisons, so it is refused too', '            ok = p.data >= 0'),
      ['tests/distributions/test_parameters.py::test_bernoulli_refuses_probs_outside_the_unit_interval'], 'Bernoulli(1.5) silently clamped to 1 − ε'),
    M('dist-categorical-negative-probs', 'minivae/distributions/distribution.py', ('            ok = numpy.isfinite(p.data) & (p.data >= 0)', '            ok = numpy.isfinite(p.data)'),
      ['tests/distributions/test_parameters.py::test_categorical_family_refuses_bad_probs'], 'a negative weight silently clamped to ε'),
    M('dist-bernoulli-probs-through-logits', 'minivae/distributions/bernoulli.py', ('        return ops.sigmoid(self.logits) if self._probs is None else self._probs', '        return ops.sigmoid(self.logits)'),
      ['tests/distributions/test_parameters.py::test_bernoulli_probs_zero_and_one_never_draw_the_impossible_value'], 'Bernoulli(probs=1) draws 0 about once in 10⁷'),
    M('dist-integer-parameter-kept-integer', 'minivae/distributions/distribution.py', ('        t = Tensor(t.data.astype(DEFAULT_FLOAT))', '        pass'),
      ['tests/distributions/test_parameters.py::test_normal_with_integer_parameters_is_float32'], 'Normal(0, 1) draws integer noise'),
    M('dist-normal-noise-in-loc-dtype', 'minivae/distributions/normal.py', ('        self._dtype = numpy.result_type(self.loc.dtype, self.scale.dtype)', '        self._dtype = self.loc.dtype'),
      ['tests/distributions/test_parameters.py::test_normal_draws_noise_in_the_result_dtype_of_loc_and_scale'], "a float64 scale's noise drawn in float32"),
    M('random-negative-size-accepted', 'minivae/random.py', ('    if any(d < 0 for d in dims):', '    if False:'),
      ['tests/test_random.py::test_negative_sizes_are_refused_and_leave_the_counter'], 'a negative size returns nothing and moves the counter backwards'),
    M('objectives-zero-samples-accepted', 'minivae/objectives.py', ('    if n < 1:', '    if n < 0:'),
      ['tests/test_objectives_models.py::test_sample_counts_below_one_are_refused'], 'elbo(k=0) is a NaN'),
    M('dist-relaxed-floor-in-float64', 'minivae/distributions/relaxed.py', ('        tiny = float(numpy.finfo(value.dtype).tiny)', '        tiny = 1e-300'),
      ['tests/distributions/test_parameters.py::test_relaxed_log_prob_of_an_array_equals_that_of_a_tensor'], 'a float32 zero floored at 1e-300, which rounds to 0: log 0'),
    M('dist-normal-mean-not-broadcast', 'minivae/distributions/normal.py', ('        return self._batch(self.loc)', '        return self.loc'),
      ['tests/distributions/test_parameters.py::test_normal_moments_are_broadcast_to_the_batch_shape'], "mean of loc's shape, not the batch's"),
    M('dist-normal-nan-scale-accepted', 'minivae/distributions/normal.py', ('        if checkable(self.scale) and not ((self.scale.data > 0) & (self.scale.data < numpy.inf)).all():', '        if checkable(self.scale) and (self.scale.data <= 0).any():'),
      ['tests/distributions/test_parameters.py::test_normal_refuses_nan_and_infinite_parameters'], 'Normal(0, nan) accepted'),
    M('dist-kl-categories-unchecked', 'minivae/distributions/kl.py', ('    if p.num_categories != q.num_categories:', '    if False:'),
      ['tests/distributions/test_parameters.py::test_categorical_kl_refuses_different_numbers_of_categories'], "KL of 3 and 4 categories: NumPy's broadcast error"),
    M('dist-zero-categories-accepted', 'minivae/distributions/distribution.py', ('    if x.shape[-1] == 0:', '    if False:'),
      ['tests/distributions/test_parameters.py::test_zero_categories_are_refused_at_construction'], 'K = 0 fails later, unreadably'),
    M('nn-tied-parameter-listed-twice', 'minivae/nn.py', ('                seen.add(id(p))', '                pass'),
      ['tests/test_nn_optim.py::test_tied_and_frozen_parameters_are_listed_and_saved_as_in_torch'], 'a tied weight listed twice: updated twice a step'),
    M('optim-duplicate-parameter-accepted', 'minivae/optim/__init__.py', ('            if id(p) in seen:', '            if False:'),
      ['tests/test_nn_optim.py::test_optimizer_refuses_a_parameter_listed_twice'], 'SGD([w, w]) updates w twice'),
    M('optim-state-broadcast-accepted', 'minivae/optim/__init__.py', ('                if dtype != b.dtype or shape not in (p.shape, (p.numel(),)):', '                if dtype != b.dtype:'),
      ['tests/test_nn_optim.py::test_optimizer_load_state_dict_refuses_what_does_not_fit_and_changes_nothing'], 'a (1,) moment broadcast over every entry'),
    M('optim-steps-set-before-the-checks', 'minivae/optim/__init__.py', ('        copies = []', '        copies = []; self.steps = int(steps)'),
      ['tests/test_nn_optim.py::test_optimizer_load_state_dict_refuses_what_does_not_fit_and_changes_nothing'], 'a refused state leaves the step count changed'),
    M('optim-clip-single-tensor-iterated', 'minivae/optim/__init__.py', ('    if isinstance(params, Tensor):  # iterating a tensor would give its rows, which have no .grad', '    if False:'),
      ['tests/test_nn_optim.py::test_clip_grad_norm_takes_a_single_tensor_as_torch'], 'clip_grad_norm_(w, 1) clips nothing and returns 0'),
    M('optim-unknown-group-option-ignored', 'minivae/optim/__init__.py', ('            unknown = sorted(set(g) - set(defaults) - {"params"}, key=str)', '            unknown = []'),
      ['tests/test_nn_optim.py::test_param_group_options_the_optimizer_does_not_take_are_refused'], "a group's weight_decay kept and ignored"),
    M('optim-beta-one-accepted', 'minivae/optim/__init__.py', ('            _check_number(where, f"betas[{k}]", beta, lambda b: 0 <= b < 1, "in [0, 1)")', '            _check_number(where, f"betas[{k}]", beta, lambda b: 0 <= b <= 1, "in [0, 1)")'),
      ['tests/test_nn_optim.py::test_hyperparameters_out_of_range_are_refused_by_the_constructor'], 'betas=(1.0, 0.999) accepted: a division by zero at step()'),
    M('optim-empty-step-counted', 'minivae/optim/__init__.py', ('        if not any(p.grad is not None for p in self.params):', '        if False:'),
      ['tests/test_nn_optim.py::test_a_step_without_any_gradient_changes_nothing_as_in_torch'], "a step without gradients advances Adam's bias correction"),
    M('nn-frozen-parameter-unregistered', 'minivae/nn.py', ('        if isinstance(value, Parameter) or (isinstance(value, Tensor) and value.requires_grad):', '        if isinstance(value, Tensor) and value.requires_grad:'),
      ['tests/test_nn_optim.py::test_tied_and_frozen_parameters_are_listed_and_saved_as_in_torch'], 'a frozen Parameter neither saved nor loaded'),
]

def copy_tree(dst):
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(".git", "__pycache__", ".hypothesis", ".pytest_cache",
                                                            "*.egg-info", ".venv", "build", "dist"))


def run_tests(tree, tests, numba, numba_cache):
    env = dict(os.environ, PYTHONPATH=tree, PYTHONDONTWRITEBYTECODE="1", NUMBA_CACHE_DIR=numba_cache)
    env.pop("MINIVAE_DISABLE_NUMBA", None)
    if not numba:
        env["MINIVAE_DISABLE_NUMBA"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    return done.returncode, done.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numba", choices=["both", "on", "off"], default="both")
    parser.add_argument("--only", help="comma-separated mutant names")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    mutants = MUTANTS
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {m.name for m in MUTANTS}
        if unknown:
            parser.error(f"unknown mutants: {sorted(unknown)}")
        mutants = [m for m in MUTANTS if m.name in wanted]
    if args.list:
        for m in mutants:
            print(f"{m.name:40s} {m.path:28s} {m.what}")
        return 0
    modes = {"both": [True, False], "on": [True], "off": [False]}[args.numba]
    results = {}
    with tempfile.TemporaryDirectory(prefix="minivae-mutants-") as tmp:
        tree, shared_cache = os.path.join(tmp, "tree"), os.path.join(tmp, "numba-cache")
        copy_tree(tree)
        for numba in modes:
            label = "numba" if numba else "no-numba"
            tests = sorted({t for m in mutants for t in m.tests})
            print(f"[{label}] baseline: the relevant tests on the unmutated tree …", flush=True)
            code, out = run_tests(tree, tests, numba, shared_cache)
            if code != 0:
                print(out[-3000:])
                print(f"[{label}] the unmutated tree fails its tests: fix that first", file=sys.stderr)
                return 2
            for m in mutants:
                path = os.path.join(tree, m.path)
                with open(path, encoding="utf-8") as f:
                    original = f.read()
                try:
                    mutated = m.apply(original)
                except LookupError as e:
                    results[m.name, label] = "STALE"
                    print(f"[{label}] {m.name:40s} STALE  ({e})", flush=True)
                    continue
                start = time.time()
                try:
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(mutated)
                    # Numba's disk cache keys a kernel on its own file only, not on the helpers it
                    # inlines: a mutated kernel compiles into a cache of its own, thrown away after
                    own_cache = m.path.startswith("minivae/_cpu/")
                    cache = os.path.join(tmp, f"numba-{m.name}") if own_cache else shared_cache
                    code, out = run_tests(tree, m.tests, numba, cache)
                    if own_cache:
                        shutil.rmtree(cache, ignore_errors=True)
                finally:
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(original)
                if code == 5:
                    verdict = "NO TESTS"
                elif code in (2, 3, 4):  # interrupted, internal error, usage error: not a test failure
                    verdict = "BROKEN"
                elif code == 0:
                    verdict = "SURVIVED"
                else:
                    verdict = "killed" + (" (timeout)" if code == "timeout" else "")
                results[m.name, label] = verdict
                print(f"[{label}] {m.name:40s} {verdict:10s} {time.time() - start:5.1f}s  {m.what}", flush=True)
    bad = {k: v for k, v in results.items() if not v.startswith("killed")}
    print(f"\n{len(results) - len(bad)} of {len(results)} mutant runs killed ({len(mutants)} mutants × {len(modes)} mode(s))")
    for (name, label), verdict in sorted(bad.items()):
        print(f"  {verdict}: {name} [{label}]")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
