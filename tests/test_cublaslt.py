"""minivae/_gpu/gemm.py's cuBLASLt path (a float32 dense layer as one cublasLtMatmul, bias and ReLU its
epilogue), without a GPU.

libcublasLt is played by ``FakeCublasLt``: its descriptors, layouts and preferences keep the attributes
they are given; its heuristic hands out a marked algorithm, remembering the alignments it was promised;
its matmul checks what it is passed and computes epilogue(op(A)·op(B) + bias) in column-major terms on
the memory the pointers address (tests/test_matmul_precision.py's ``op`` and ``strided``). NumPy arrays,
or tests/strict_array.py's strict arrays for the op through the engine, stand in for CuPy's.
(tests/gpu/test_cublaslt.py checks the same against the real library.)"""
import contextlib
import ctypes
import types

import numpy as np
import pytest

import minivae as mv
from minivae import _gpu, ops
from minivae._gpu import gemm, timing
from tests.strict_array import StrictArray, emulating, strict
from tests.test_matmul_precision import op, strided

HANDLE, CAPTURE_HANDLE, STREAM, WORKSPACE, ALGO = 101, 202, 303, 4096, 77


def alignment(address):
    return min(256, address & -address)


class FakeCublasLt:
    def __init__(self):
        self.objects, self.calls, self.status, self.found = {}, [], 0, 3
        self.next, self.next_algo, self.promised = 1000, ALGO, {}
        self.times = {}  # algorithm → the milliseconds timing.fastest reports (default: later ones faster)
        self.timing = False  # True while timing.fastest runs the candidates (a GPU's first eager call; not a capture's)

    def _new(self, out, kind, **fields):
        self.next += 1
        self.objects[self.next] = dict(kind=kind, **fields)
        out._obj.value = self.next
        return 0

    def _set(self, obj, attribute, value, size):
        assert size == ctypes.sizeof(value._obj)  # cuBLASLt refuses a size other than the attribute's
        self.objects[obj.value][attribute] = value._obj.value
        return 0

    def cublasLtMatmulDescCreate(self, out, compute, scale):
        return self._new(out, "desc", compute=compute, scale=scale)

    def cublasLtMatrixLayoutCreate(self, out, dtype, rows, cols, ld):
        return self._new(out, "layout", dtype=dtype, rows=rows, cols=cols, ld=ld)

    def cublasLtMatmulPreferenceCreate(self, out):
        return self._new(out, "preference")

    cublasLtMatmulDescSetAttribute = cublasLtMatmulPreferenceSetAttribute = _set

    def _destroy(self, obj):
        del self.objects[obj.value]
        return 0

    cublasLtMatmulDescDestroy = cublasLtMatrixLayoutDestroy = cublasLtMatmulPreferenceDestroy = _destroy

    def cublasLtMatmulAlgoGetHeuristic(self, handle, desc, a, b, c, d, preference, requested, results, found):
        assert requested == gemm.LT_CANDIDATES and c.value == d.value
        self.calls.append(("heuristic", dict(self.objects[preference.value])))
        found._obj.value = min(self.found, requested)
        for i in range(found._obj.value):  # each query's algorithms are their own, for these alignments
            self.next_algo += 1
            results[i].algo[0] = self.next_algo
            self.promised[self.next_algo] = dict(self.objects[preference.value],
                                                 bias=self.objects[desc.value].get(gemm.DESC_BIAS_POINTER, 0))
        return 0

    def cublasLtMatmul(self, handle, desc, alpha, a, a_layout, b, b_layout, beta, c, c_layout, d, d_layout, algo,
                       workspace, workspace_size, stream):
        desc, la, lb, ld_ = (self.objects[o.value] for o in (desc, a_layout, b_layout, d_layout))
        self.calls.append(("matmul", handle, stream, dict(desc), algo._obj[0]))
        assert (alpha._obj.value, beta._obj.value) == (1, 0) and (c, c_layout.value) == (d, d_layout.value)
        assert workspace == WORKSPACE and workspace_size == gemm.LT_WORKSPACE
        promised = self.promised[algo._obj[0]]
        assert promised[gemm.PREF_MAX_WORKSPACE_BYTES] == gemm.LT_WORKSPACE
        for attribute, pointer in zip(gemm.PREF_MIN_ALIGNMENT_BYTES, (a, b, c, d)):
            assert alignment(pointer) >= promised[attribute], "an algorithm used on memory less aligned than promised"
        if self.status:
            return self.status
        assert la["dtype"] == lb["dtype"] == ld_["dtype"] == gemm.CUDA_R_32F
        f32 = np.float32
        # op(A) (m×k) · op(B) (k×n) = D (m×n), column-major, each operand as stored (rows × cols, ld)
        ta, tb = desc.get(gemm.DESC_TRANSA, 0) == gemm.OP_T, desc.get(gemm.DESC_TRANSB, 0) == gemm.OP_T
        m, n = ld_["rows"], ld_["cols"]
        k = la["rows"] if ta else la["cols"]
        out = op(a, f32, ta, m, k, la["ld"]).astype(np.float64) @ op(b, f32, tb, k, n, lb["ld"])
        epilogue = desc[gemm.DESC_EPILOGUE]
        if epilogue == gemm.EPILOGUE_DEFAULT:
            assert gemm.DESC_BIAS_POINTER not in desc
        else:
            bias = desc[gemm.DESC_BIAS_POINTER]
            assert alignment(bias) >= alignment(promised["bias"]), "a bias less aligned than the heuristic's"
            out = out + strided(bias, f32, 1, m, m)[0][:, None]
            assert epilogue in (gemm.EPILOGUE_BIAS, gemm.EPILOGUE_RELU_BIAS)
            if epilogue == gemm.EPILOGUE_RELU_BIAS:
                out = np.maximum(out, 0)
        strided(d, f32, n, m, ld_["ld"])[...] = out.T
        return 0

    def matmuls(self):
        return [call for call in self.calls if call[0] == "matmul"]

    def heuristics(self):
        return [call for call in self.calls if call[0] == "heuristic"]


@contextlib.contextmanager
def installed(xp=np):
    """A FakeCublasLt in place of libcublasLt within this block, the path switched on, no plan cached; a
    stand-in cupy whose arrays are ``xp``'s (NumPy, or the strict arrays; ``fake.xp`` may change it)."""
    fake = FakeCublasLt()
    fake.xp = xp
    def empty(shape, dtype):  # 256-byte aligned, as CuPy's allocations are (the plans' keys hold alignments)
        a = offset(np.empty(shape, dtype), 0)
        return a if fake.xp is np else StrictArray(a)
    cupy = types.SimpleNamespace(
        empty=empty, matmul=lambda a, b: fake.xp.matmul(a, b),
        ascontiguousarray=lambda a: fake.xp.ascontiguousarray(a),
        get_default_memory_pool=lambda: types.SimpleNamespace(malloc=lambda n: types.SimpleNamespace(ptr=WORKSPACE)),
        cuda=types.SimpleNamespace(device=types.SimpleNamespace(get_cublas_handle=lambda: HANDLE),
                                   get_current_stream=lambda: types.SimpleNamespace(ptr=STREAM),
                                   get_device_id=lambda: 0))
    def fastest(cupy, runs):  # timing.fastest: each run's call noted as timed, its time from fake.times
        times = []
        fake.timing = True
        for run in runs:
            before = len(fake.calls)
            assert run() == fake.status
            (call,) = fake.calls[before:]
            fake.calls[before:] = [("timed", call[4])]
            times.append(fake.times.get(call[4], 100.0 - call[4] % 100))
        fake.timing = False
        return times.index(min(times)), times
    names = ("use_lt", "_cublaslt", "cupy_module", "_lt_plans", "_lt_workspaces")
    saved = [getattr(gemm, name) for name in names] + [timing.fastest]
    for name, value in zip(names, (True, lambda: fake, lambda: cupy, {}, {})):
        setattr(gemm, name, value)
    timing.fastest = fastest
    try:
        yield fake
    finally:
        for name, value in zip(names, saved):
            setattr(gemm, name, value)
        timing.fastest = saved[-1]


@pytest.fixture
def lt():
    before = mv.get_float32_matmul_precision()
    with installed() as fake:
        yield fake
    mv.set_float32_matmul_precision(before)


def layer(lead=(6,), k=5, n=4, transpose_w=False, seed=0):
    """x, W and b of a dense layer, 256-byte aligned as CuPy's allocations are."""
    rng = np.random.default_rng(seed)
    x = offset(rng.standard_normal(lead + (k,)).astype(np.float32), 0)
    w = offset(rng.standard_normal((n, k) if transpose_w else (k, n)).astype(np.float32), 0)
    return x, (w.T if transpose_w else w), offset(rng.standard_normal(n).astype(np.float32), 0)


def formula(x, w, b, relu):
    y = x.astype(np.float64) @ w + b
    return np.maximum(y, 0) if relu else y


def offset(a, elements):
    """A C-contiguous copy of ``a`` whose data starts ``elements`` float32s past an aligned address."""
    buf = np.empty(a.size + 64, a.dtype)
    start = (-(buf.ctypes.data // a.itemsize)) % 64 + elements  # 256-byte aligned, then moved
    out = buf[start:start + a.size].reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("lead,transpose_w", [((6,), False), ((6,), True), ((2, 3), False)])
def test_a_dense_layer_is_one_cublaslt_call(lt, relu, lead, transpose_w):
    """act(x @ W + b) from one cublasLtMatmul: the bias along the layer's outputs (rows of cuBLAS's D), the
    ReLU after it; a transposed W (F-contiguous) read as stored, a batch of sequences as one product."""
    x, w, b = layer(lead, transpose_w=transpose_w)
    y = gemm.linear(x, w, b, relu)
    assert y.shape == lead + (4,) and y.dtype == np.float32
    np.testing.assert_allclose(y, formula(x, w, b, relu), rtol=1e-6, atol=1e-6)
    assert (y == 0).any() == relu  # the data has negative pre-activations: only the ReLU zeroes them
    (_, handle, stream, desc, _), = lt.matmuls()
    assert (handle, stream) == (HANDLE, STREAM)
    assert desc["compute"] == gemm.COMPUTE_32F and desc["scale"] == gemm.CUDA_R_32F
    assert desc[gemm.DESC_EPILOGUE] == (gemm.EPILOGUE_RELU_BIAS if relu else gemm.EPILOGUE_BIAS)


def test_tf32_precision_asks_for_tf32_compute(lt):
    x, w, b = layer()
    mv.set_float32_matmul_precision("high")
    gemm.linear(x, w, b, True)
    mv.set_float32_matmul_precision("highest")
    gemm.linear(x, w, b, True)
    assert [call[3]["compute"] for call in lt.matmuls()] == [gemm.COMPUTE_32F_FAST_TF32, gemm.COMPUTE_32F]
    assert len(lt.heuristics()) == 2  # a plan of each precision


def test_one_heuristic_query_per_shape_and_alignment_and_the_bias_of_each_call(lt):
    """A second layer of the same shapes reuses the plan but adds its own bias (the pointer is set at each
    call); memory less aligned than the plan was found for gets a plan of its own (the fake refuses an
    algorithm used on memory less aligned than its query promised, as a GPU would fault)."""
    x, w, b = layer()
    gemm.linear(x, w, b, False)
    x2, w2, b2 = layer(seed=1)
    np.testing.assert_allclose(gemm.linear(x2, w2, b2, False), formula(x2, w2, b2, False), rtol=1e-6, atol=1e-6)
    assert len(lt.heuristics()) == 1
    x3 = offset(x2, 1)  # 4-byte aligned
    np.testing.assert_allclose(gemm.linear(x3, w2, b2, False), formula(x2, w2, b2, False), rtol=1e-6, atol=1e-6)
    (_, first), (_, second) = lt.heuristics()
    b_pref = gemm.PREF_MIN_ALIGNMENT_BYTES[1]  # x is cuBLAS's B
    assert first[b_pref] == 256 and second[b_pref] == 4
    assert first[gemm.PREF_MAX_WORKSPACE_BYTES] == gemm.LT_WORKSPACE


def test_layers_it_leaves_to_the_product_and_bias_pass(lt, monkeypatch):
    """None (the caller then runs the product and bias_act_fwd) for what it does not take, without a call."""
    x, w, b = layer()
    assert gemm.linear(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), True) is None
    assert gemm.linear(x[:1], w, b, True) is None                        # a row of one
    assert gemm.linear(x[:, :1], w[:1], b, True) is None                 # k = 1
    assert gemm.linear(x, w[:, :1], b[:1], True) is None                 # one output
    assert gemm.linear(x, w, offset(b, 1), True) is None                 # a bias 4-byte aligned
    x3 = np.ascontiguousarray(np.broadcast_to(x, (2, 6, 5)))[:, ::2]     # a batch of sequences, not contiguous
    assert gemm.linear(x3, w, b, True) is None
    assert lt.calls == []
    lt.found = 0                                                         # the heuristic has no algorithm
    assert gemm.linear(x, w, b, True) is None
    assert gemm.linear(x, w, b, True) is None
    assert len(lt.heuristics()) == 1 and lt.matmuls() == []              # asked once
    monkeypatch.setattr(gemm, "_cublaslt", lambda: None)                 # no libcublasLt in this process
    assert gemm.linear(*layer(seed=2), False) is None
    monkeypatch.setattr(gemm, "_cublaslt", lambda: lt)
    monkeypatch.setattr(gemm, "use_lt", False)                           # the default, without MINIVAE_CUBLASLT=1
    assert gemm.linear(*layer(seed=3), False) is None
    assert len(lt.heuristics()) == 1


def test_a_failed_call_is_an_error_and_a_capture_uses_its_handle(lt, monkeypatch):
    x, w, b = layer()
    monkeypatch.setattr(_gpu, "capture", types.SimpleNamespace(cublas_handle=CAPTURE_HANDLE))
    gemm.linear(x, w, b, True)
    assert lt.matmuls()[0][1:3] == (CAPTURE_HANDLE, STREAM)
    lt.status = 13  # CUBLAS_STATUS_EXECUTION_FAILED
    with pytest.raises(RuntimeError, match="cublasLtMatmul failed with status 13"):
        gemm.linear(x, w, b, True)


@pytest.mark.parametrize("relu", [False, True])
def test_the_op_on_the_device_is_the_cublaslt_call_forward(lt, relu):
    """ops.linear on the stand-in device (its kernels run by the host emulation), forward and backward, equals
    the CPU; the forward is the one cuBLASLt call, no bias pass; the backward's two products plain cuBLASLt
    calls, its bias gradient kernels/linear.cu's as before."""
    import importlib
    if importlib.import_module("tests.cuda_host.host").compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._backend import use_cuda_kernels
    from minivae._gpu import loader
    from tests.cuda_host import host as cuda_host
    from tests.test_launch_count import launch_count, names
    lt.xp = strict
    x, w, b = layer((8,), 6, 5)
    g = np.random.default_rng(4).standard_normal((8, 5)).astype(np.float32)
    results = {}
    for device in ("cpu", "cuda"):
        with emulating(), use_cuda_kernels(True), loader.use_module_factory(cuda_host.module_factory()), \
                launch_count.counting() as launches:
            ts = [mv.tensor(a, device=device, requires_grad=True) for a in (x, w, b)]
            y = ops.linear(*ts, activation="relu" if relu else None)
            y.backward(mv.tensor(g, device=device))
            results[device] = [y.data, *(t.grad for t in ts)]
            results[device] = [a.get() if device == "cuda" else a for a in results[device]]
    epilogue = gemm.EPILOGUE_RELU_BIAS if relu else gemm.EPILOGUE_BIAS
    assert [call[3][gemm.DESC_EPILOGUE] for call in lt.matmuls()] == [epilogue] + [gemm.EPILOGUE_DEFAULT] * 2
    assert {k for k in names(launches) if k.startswith("kernel ")} == {"kernel bias_grad"}
    assert "matmul" not in names(launches)  # x̄ and W̄ too are cuBLASLt's
    for got, want in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_fastest_candidate_is_timed_once_and_kept(lt):
    """The heuristic's candidates are timed on the first eager call and the fastest used from then on (here the
    second of three, not the heuristic's first); no timing afterwards, nor for a second layer of the same shape."""
    x, w, b = layer()
    first = lt.next_algo + 1
    lt.times = {first: 2.0, first + 1: 0.5, first + 2: 1.0}
    y = gemm.linear(x, w, b, True)
    np.testing.assert_allclose(y, formula(x, w, b, True), rtol=1e-6, atol=1e-6)
    assert [call[1] for call in lt.calls if call[0] == "timed"] == [first, first + 1, first + 2]
    x2, w2, b2 = layer(seed=1)
    gemm.linear(x2, w2, b2, True)
    assert [call[4] for call in lt.matmuls()] == [first + 1, first + 1]
    assert len([call for call in lt.calls if call[0] == "timed"]) == 3


def test_in_a_capture_the_heuristics_first_choice_untimed(lt, monkeypatch):
    monkeypatch.setattr(_gpu, "capture", types.SimpleNamespace(cublas_handle=CAPTURE_HANDLE))
    first = lt.next_algo + 1
    gemm.linear(*layer(), False)
    assert [call[4] for call in lt.matmuls()] == [first]
    assert not [call for call in lt.calls if call[0] == "timed"]


@pytest.mark.parametrize("a_shape,transpose_b", [((7, 5), False), ((7, 5), True), ((2, 3, 5), False)])
def test_plain_float32_products_are_cublaslt_calls(lt, a_shape, transpose_b):
    """gemm.matmul with the switch on: a product without a bias (the VJP's x̄ and W̄, with their transposed views)
    is one cuBLASLt call, no bias pointer; float64 and mismatched shapes go the old way (cupy.matmul here)."""
    rng = np.random.default_rng(5)
    a = offset(rng.standard_normal(a_shape).astype(np.float32), 0)
    b = offset(rng.standard_normal((4, 5) if transpose_b else (5, 4)).astype(np.float32), 0)
    b = b.T if transpose_b else b
    c = gemm.matmul(a, b)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-6, atol=1e-6)
    (_, _, _, desc, _), = lt.matmuls()
    assert desc[gemm.DESC_EPILOGUE] == gemm.EPILOGUE_DEFAULT and gemm.DESC_BIAS_POINTER not in desc
    np.testing.assert_array_equal(gemm.matmul(a.astype(np.float64), b.astype(np.float64)), a.astype(np.float64) @ b)
    with pytest.raises(ValueError):
        gemm.matmul(a, b[:3])
    assert len(lt.matmuls()) == 1


def test_each_stream_has_a_workspace_of_its_own(lt):
    """Two streams running products at once must not share one workspace."""
    cupy = gemm.cupy_module()
    first, again, other = gemm._workspace(cupy, 1), gemm._workspace(cupy, 1), gemm._workspace(cupy, 2)
    assert first == again and len(gemm._lt_workspaces) == 2 and other == WORKSPACE
