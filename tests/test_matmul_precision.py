"""minivae.set_float32_matmul_precision and minivae/_gpu/gemm.py's TF32 path, without a GPU.

CuPy's cuBLAS is played by ``FakeCublas``: the handle's stream and math mode (cupy_backends' bindings) and
libcublas's two GEMMs, which compute the column-major product on the memory their pointers address and
log each call with the mode and stream the handle had then. NumPy arrays (or tests/strict_array.py's
strict arrays) stand in for CuPy's: gemm.py reads their addresses through ``_gpu.address``.
(tests/gpu/test_matmul_precision.py checks the numbers of TF32 on a real GPU.)"""
import ctypes
import subprocess
import sys
import types

import numpy as np
import pytest

import minivae as mv
from minivae import _gpu
from minivae._gpu import gemm
from tests.strict_array import emulating, strict

HANDLE, CAPTURE_HANDLE, STREAM = 101, 202, 303
USER_MODE = 16  # CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION: a mode the user may have set on CuPy's handle


def strided(ptr, dtype, outer, inner, ld):
    """The column-major matrix at ``ptr`` as cuBLAS reads it, transposed: ``outer`` columns of ``inner``
    elements, ``ld`` apart, as a row-major (outer, inner) NumPy view."""
    flat = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype))),
                                 shape=((outer - 1) * ld + inner,))
    return np.lib.stride_tricks.as_strided(flat, (outer, inner), (ld * flat.itemsize, flat.itemsize))


def op(ptr, dtype, transpose, rows, cols, ld):
    """op(X), rows×cols, of cuBLAS's operand X at ``ptr``: X as stored (OP_N) or its transpose (OP_T)."""
    return strided(ptr, dtype, rows, cols, ld) if transpose else strided(ptr, dtype, cols, rows, ld).T


class FakeCublas:
    def __init__(self, mode=0):
        self.mode, self.stream = {HANDLE: mode, CAPTURE_HANDLE: mode}, {}
        self.calls, self.status = [], 0

    def getMathMode(self, handle):
        return self.mode[handle]

    def setMathMode(self, handle, mode):
        self.calls.append(("setMathMode", handle, mode))
        self.mode[handle] = mode

    def setStream(self, handle, stream):
        self.calls.append(("setStream", handle, stream))
        self.stream[handle] = stream

    def cublasSgemm_v2(self, *args):
        return self._gemm(np.float32, *args)

    def cublasDgemm_v2(self, *args):
        return self._gemm(np.float64, *args)

    def _gemm(self, dtype, handle, op_b, op_a, n, m, k, alpha, b, ld_b, a, ld_a, beta, c, ld_c):
        """C (n×m) = op(B) (n×k) · op(A) (k×m), all column-major: cᵀ = bᵀ·aᵀ of the row-major caller."""
        self.calls.append(("gemm", dtype, handle, self.mode[handle], self.stream.get(handle), (m, n, k)))
        assert (alpha._obj.value, beta._obj.value) == (1, 0)
        if isinstance(self.status, Exception):
            raise self.status
        if self.status:
            return self.status
        product = op(b, dtype, op_b == gemm.OP_T, n, k, ld_b) @ op(a, dtype, op_a == gemm.OP_T, k, m, ld_a)
        strided(c, dtype, m, n, ld_c)[...] = product.T
        return 0

    def gemms(self):
        return [call for call in self.calls if call[0] == "gemm"]


@pytest.fixture(autouse=True)
def restore_precision():
    """Each test leaves the global precision as it found it. (Not named ``precision``: a test's parameter of
    that name would take the fixture's place, and its setting would outlive it.)"""
    before = mv.get_float32_matmul_precision()
    yield
    mv.set_float32_matmul_precision(before)


@pytest.fixture
def cublas(monkeypatch):
    """FakeCublas in place of CuPy's cuBLAS, and a stand-in cupy whose arrays are ``cublas.xp``'s (NumPy, or
    the strict arrays) and whose matmul logs its operands."""
    fake = FakeCublas(USER_MODE)
    fake.xp, fake.matmuls = np, []

    def matmul(a, b):
        fake.matmuls.append((a.shape, b.shape, a.dtype))
        return fake.xp.matmul(a, b)
    cupy = types.SimpleNamespace(
        matmul=matmul, empty=lambda shape, dtype: fake.xp.empty(shape, dtype),
        ascontiguousarray=lambda a: fake.xp.ascontiguousarray(a),
        cuda=types.SimpleNamespace(device=types.SimpleNamespace(get_cublas_handle=lambda: HANDLE),
                                   get_current_stream=lambda: types.SimpleNamespace(ptr=STREAM)))
    monkeypatch.setattr(gemm, "_bindings", lambda: fake)
    monkeypatch.setattr(gemm, "_cublas", lambda: fake)
    monkeypatch.setattr(gemm, "cupy_module", lambda: cupy)
    return fake


def operands(dtype, transpose_a=False, transpose_b=False, a_shape=(7, 5), n=4):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(a_shape[::-1] if transpose_a else a_shape).astype(dtype)
    b = rng.standard_normal((n, a_shape[-1]) if transpose_b else (a_shape[-1], n)).astype(dtype)
    return (a.T if transpose_a else a), (b.T if transpose_b else b)


# ---- the setting --------------------------------------------------------------------------------
def test_the_default_is_highest_and_import_minivae_loads_no_cupy():
    code = "import sys, minivae; print(minivae.get_float32_matmul_precision(), 'cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["highest", "False"]


def test_set_and_get_and_what_is_refused():
    mv.set_float32_matmul_precision("high")
    assert mv.get_float32_matmul_precision() == "high"
    for wrong in ("medium", "HIGH", "tf32", "", None):  # PyTorch's "medium" (bfloat16) is not offered
        with pytest.raises(ValueError, match="'highest', 'high'"):
            mv.set_float32_matmul_precision(wrong)
        assert mv.get_float32_matmul_precision() == "high"
    mv.set_float32_matmul_precision("highest")
    assert mv.get_float32_matmul_precision() == "highest"


# ---- "high": TF32 around a direct cuBLAS call ---------------------------------------------------
@pytest.mark.parametrize("transpose_a,transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_high_runs_sgemm_in_tf32_mode_and_restores_the_previous_mode(cublas, transpose_a, transpose_b):
    """The VJP's transposed views included; the handle on the current stream; the user's own mode back after."""
    a, b = operands(np.float32, transpose_a, transpose_b)
    mv.set_float32_matmul_precision("high")
    c = gemm.matmul(a, b)
    assert cublas.gemms() == [("gemm", np.float32, HANDLE, gemm.TF32_TENSOR_OP_MATH, STREAM, (7, 4, 5))]
    assert [call for call in cublas.calls if call[0] == "setMathMode"] == [
        ("setMathMode", HANDLE, gemm.TF32_TENSOR_OP_MATH), ("setMathMode", HANDLE, USER_MODE)]
    assert cublas.mode[HANDLE] == USER_MODE and cublas.matmuls == []
    assert c.shape == (7, 4) and c.flags.c_contiguous
    np.testing.assert_allclose(c, a @ b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("failure,error,message", [
    (13, RuntimeError, "Sgemm failed with status 13"),  # CUBLAS_STATUS_EXECUTION_FAILED
    (ctypes.ArgumentError("argument 8: wrong type"), ctypes.ArgumentError, "argument 8")])  # raised by the call
def test_a_failed_sgemm_raises_and_still_restores_the_mode(cublas, failure, error, message):
    cublas.status = failure
    mv.set_float32_matmul_precision("high")
    with pytest.raises(error, match=message):
        gemm.matmul(*operands(np.float32))
    assert cublas.gemms()[0][3] == gemm.TF32_TENSOR_OP_MATH and cublas.mode[HANDLE] == USER_MODE


def test_a_batch_of_rows_times_a_matrix_is_one_gemm(cublas):
    """A C-contiguous (…, k) @ (k, n): one GEMM with m = the rows of all leading axes; other layouts, CuPy's matmul."""
    mv.set_float32_matmul_precision("high")
    a, b = operands(np.float32, a_shape=(2, 3, 5), n=4)
    c = gemm.matmul(a, b)
    assert [call[5] for call in cublas.gemms()] == [(6, 4, 5)] and c.shape == (2, 3, 4)
    np.testing.assert_allclose(c, a @ b, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(gemm.matmul(np.zeros((2, 0, 5), np.float32), b), np.zeros((2, 0, 4)))
    gemm.matmul(a.transpose(1, 0, 2), b)  # not C-contiguous: no reshape without a copy
    assert len(cublas.gemms()) == 1 and cublas.matmuls == [((3, 2, 5), (5, 4), np.float32)]


def test_highest_and_float64_leave_cublas_alone(cublas):
    """"highest" eagerly: CuPy's matmul as before; "high" does not concern float64 (nor mixed dtypes)."""
    a32, b32 = operands(np.float32)
    a64, b64 = operands(np.float64)
    gemm.matmul(a32, b32)
    mv.set_float32_matmul_precision("high")
    gemm.matmul(a64, b64)
    gemm.matmul(a32, b64)
    assert cublas.calls == [] and [m[2] for m in cublas.matmuls] == [np.float32, np.float64, np.float32]


# ---- inside a CUDA graph's capture --------------------------------------------------------------
@pytest.mark.parametrize("precision,dtype,mode", [("high", np.float32, gemm.TF32_TENSOR_OP_MATH),
                                                  ("highest", np.float32, USER_MODE), ("high", np.float64, USER_MODE)])
def test_in_a_capture_the_bound_handle_is_used_and_only_tf32_changes_its_mode(cublas, monkeypatch, precision, dtype,
                                                                              mode):
    """The capture's handle, whose stream bind() set before the capture (setting it now would be refused);
    "highest" and float64 keep the handle's mode, as CuPy's matmul would."""
    monkeypatch.setattr(_gpu, "capture", types.SimpleNamespace(cublas_handle=CAPTURE_HANDLE))
    mv.set_float32_matmul_precision(precision)
    a, b = operands(dtype)
    c = gemm.matmul(a, b)
    assert cublas.gemms() == [("gemm", dtype, CAPTURE_HANDLE, mode, None, (7, 4, 5))]
    assert not any(call[0] == "setStream" for call in cublas.calls)
    assert cublas.mode == {HANDLE: USER_MODE, CAPTURE_HANDLE: USER_MODE} and cublas.matmuls == []
    np.testing.assert_allclose(c, a @ b, rtol=1e-6, atol=1e-12)


# ---- through the op ---------------------------------------------------------------------------------
def test_matmul_forward_and_backward_all_take_tf32(cublas):
    """ops.matmul on "cuda" data (strict arrays): z = x @ W, x̄ = ḡ @ Wᵀ, W̄ = xᵀ @ ḡ, three TF32 GEMMs."""
    cublas.xp = strict
    x_host, w_host = operands(np.float32)
    mv.set_float32_matmul_precision("high")
    with emulating():
        x, w = mv.tensor(x_host, device="cuda", requires_grad=True), mv.tensor(w_host, device="cuda", requires_grad=True)
        (x @ w).sum().backward()
        got = [x.grad.get(), w.grad.get()]
    assert [(call[3], call[5]) for call in cublas.gemms()] == [(gemm.TF32_TENSOR_OP_MATH, mnk) for mnk in
                                                                 [(7, 4, 5), (7, 5, 4), (5, 4, 7)]]
    assert cublas.matmuls == [] and cublas.mode[HANDLE] == USER_MODE
    ones = np.ones((7, 4), np.float32)
    np.testing.assert_allclose(got[0], ones @ w_host.T, rtol=1e-6)
    np.testing.assert_allclose(got[1], x_host.T @ ones, rtol=1e-6)
