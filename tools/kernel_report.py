"""Registers, static shared memory, stack (local memory) and spills of every kernel of kernels/*.cu per
GPU architecture, as NVRTC builds them for the runtime (loader.SOURCES with exactly loader.NVRTC_OPTIONS
and the architecture) and, when nvcc is on PATH, as nvcc builds the same instantiations. No GPU needed.

    python tools/kernel_report.py [--arch sm_75 sm_80 sm_90] [--source softmax.cu ...] [--compiler nvrtc|nvcc|both]

Exit status 1 when a build fails, prints any diagnostic (a warning is a failure), leaves a name expression
without its kernel, spills, or keeps a stack frame that EXPECTED_STACK does not allow; 2 when no compiler
is available. tests/test_cuda_build.py asserts the same per (source, architecture, compiler).
"""
import argparse
import concurrent.futures
import dataclasses
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing

from minivae._gpu import loader, nvrtc  # noqa: E402

ARCHS = ("sm_75", "sm_80", "sm_90")     # Turing (CUDA 13's oldest), Ampere, Hopper
PTXAS_VERBOSE = "--ptxas-options=-v"    # ptxas's per-function report; it does not change the code
# Stack bytes a kernel may keep, by template name. CUDA's double sin/cos carry a Payne–Hanek argument
# reduction for huge |θ| whose 5-word table lives in local memory (40 bytes on sm_75..sm_90); Box–Muller's
# θ ∈ [0, 2π) never takes that path, so the frame is reserved but never touched.
EXPECTED_STACK = {"philox_normal": 40, "normal_reparameterize_kl_fwd": 40,  # both take Box–Muller pairs
                  "standard_gamma_draws": 40}  # (its normal: Box–Muller's cos of θ ∈ (0, 2π))


@dataclasses.dataclass
class Usage:
    """ptxas's report for one function (bytes, except registers)."""
    registers: int = 0
    smem: int = 0
    stack: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    entry: bool = False                 # a __global__ kernel, not a non-inlined device function


_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_PROPERTIES = re.compile(r"Function properties for (\S+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_LOCAL = re.compile(r"(\d+) bytes (?:cumulative stack size|lmem)")
# Lines of ptxas's -v report; everything else in a log is a diagnostic (warning, remark or error).
_REPORT = re.compile(r"ptxas info\s*:|ptxas\s+\.\s|\s+\d+ bytes stack frame")


def parse_ptxas(log):
    """{function (mangled) name: Usage} from the output of ``ptxas -v`` (NVRTC's log or nvcc's output)."""
    usage, entry, properties = {}, None, None
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            entry = usage.setdefault(m.group(1), Usage())
            entry.entry = True
        elif m := _PROPERTIES.search(line):
            properties = usage.setdefault(m.group(1), Usage())
        elif (m := _FRAME.search(line)) and properties is not None:
            properties.stack = max(properties.stack, int(m.group(1)))
            properties.spill_stores, properties.spill_loads = int(m.group(2)), int(m.group(3))
        elif (m := _USED.search(line)) and entry is not None:
            entry.registers = int(m.group(1))
            entry.smem = sum(int(s) for s in _SMEM.findall(line))
            entry.stack = max([entry.stack] + [int(s) for s in _LOCAL.findall(line)])
    return usage


def diagnostics(log):
    """The lines of a compiler log that are not ptxas's report: warnings, remarks, errors."""
    return [line for line in log.splitlines() if line.strip() and not _REPORT.match(line)]


def template_name(expression):
    return expression.split("<", 1)[0].strip()


@dataclasses.dataclass
class Build:
    compiler: str                       # "nvrtc" or "nvcc"
    source: str                         # file name in kernels/
    arch: str
    names: list                         # the name expressions asked for
    log: str = ""
    error: str = ""                     # why the build failed ("" when it produced a CUBIN)
    usage: dict = dataclasses.field(default_factory=dict)      # mangled name -> Usage
    lowered: dict = dataclasses.field(default_factory=dict)    # name expression -> mangled name

    def kernel(self, expression):
        return self.usage.get(self.lowered.get(expression))

    def problems(self):
        """Everything wrong with this build, one line each (empty: it is clean)."""
        where = f"{self.compiler} {self.source} {self.arch}"
        if self.error:
            return [f"{where}: build failed: {self.error}"]
        found = [f"{where}: diagnostic: {line}" for line in diagnostics(self.log)]
        if self.compiler == "nvrtc" and self.lowered and not self.usage:
            # NVRTC 13.0 (seen on a GPU machine) ignores --ptxas-options=-v and prints no report: the build is
            # clean and every name was lowered, but its registers and spills are unknown (nvcc's build shows them)
            return found
        if self.lowered:
            found += [f"{where}: {e}: no kernel {self.lowered.get(e)!r} in ptxas's report (not instantiated?)"
                      for e in self.names if self.kernel(e) is None]
        elif sum(u.entry for u in self.usage.values()) != len(self.names):
            found.append(f"{where}: {sum(u.entry for u in self.usage.values())} kernels built for {len(self.names)} "
                         "name expressions")
        allowed = {self.lowered[e]: EXPECTED_STACK.get(template_name(e), 0) for e in self.lowered}
        for function, u in self.usage.items():
            label = next((e for e, m in self.lowered.items() if m == function), function)
            if u.spill_stores or u.spill_loads:
                found.append(f"{where}: {label}: spills ({u.spill_stores} bytes stores, {u.spill_loads} bytes loads)")
            if u.stack > allowed.get(function, 0) and u.entry:
                found.append(f"{where}: {label}: {u.stack} bytes stack frame (allowed {allowed.get(function, 0)})")
        return found


def nvrtc_build(path, names, arch, options=loader.NVRTC_OPTIONS):
    """Build ``path`` as the runtime does: NVRTC, ``options`` + the architecture (+ ptxas's report)."""
    path = Path(path)
    build = Build("nvrtc", path.name, arch, list(names))
    try:
        compiled = nvrtc.compile(path.read_text(), build.names, [*options, PTXAS_VERBOSE], arch, path.name)
    except nvrtc.NVRTCError as error:
        build.error, build.log = str(error), error.log
        return build
    build.log, build.lowered = compiled.log, compiled.lowered
    build.usage = parse_ptxas(compiled.log)
    return build


def nvcc_wrapper(path, names):
    """A .cu that includes ``path`` and instantiates every name expression by taking its address (an
    external array, so nothing is unused)."""
    keep = ",\n    ".join(f"(void*)&{e}" for e in names)
    return f'#include "{Path(path).resolve()}"\n\nvoid* minivae_instantiate[] = {{\n    {keep}\n}};\n'


def nvcc_build(path, names, arch, lowered=None, extra=(), nvcc=None):
    """Build ``path`` with nvcc for ``arch``, every name expression instantiated; ``lowered`` (name
    expression -> mangled name, from NVRTC) names the kernels in ptxas's report."""
    path = Path(path)
    build = Build("nvcc", path.name, arch, list(names), lowered=dict(lowered or {}))
    with tempfile.TemporaryDirectory(prefix="minivae-nvcc-") as tmp:
        wrapper = Path(tmp) / f"instantiate_{path.stem}.cu"
        wrapper.write_text(nvcc_wrapper(path, names))
        command = [nvcc or shutil.which("nvcc") or "nvcc", "-cubin", f"-arch={arch}", "-Xptxas", "-v", "-std=c++17",
                   "-I", str(path.parent), *extra, str(wrapper), "-o", str(Path(tmp) / "out.cubin")]
        done = subprocess.run(command, capture_output=True, text=True)
    build.log = done.stdout + done.stderr
    if done.returncode:
        build.error = f"nvcc exited with {done.returncode}:\n{build.log}"
    build.usage = parse_ptxas(build.log)
    return build


@functools.lru_cache(maxsize=None)
def compiler_identity(compiler):
    """What, besides the sources and options, decides a build: the NVRTC library or the nvcc release."""
    if compiler == "nvrtc":
        return nvrtc.available()[1]
    nvcc = shutil.which("nvcc")
    return f"{nvcc} " + subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout


def cache_key(compiler, source, arch, names, options):
    """A digest of everything a build reads: compiler, arch, options, name expressions, the source and
    every header beside it (kernels/*.cuh)."""
    digest = hashlib.sha256()
    for part in (compiler_identity(compiler), arch, *options, "", *names, ""):
        digest.update(part.encode() + b"\0")
    for path in [loader.KERNELS_DIR / source, *sorted(loader.KERNELS_DIR.glob("*.cuh"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_all(sources, archs, compilers, jobs=None, cache=None):
    """{(compiler, source, arch): Build} for loader.SOURCES' files in ``sources``, compiled in parallel
    (NVRTC releases the GIL; nvcc is a subprocess). nvcc's kernels are named by NVRTC's lowered names.

    ``cache`` (an object with pytest's ``config.cache`` get/set) keeps each build's log under a digest
    of everything it reads (cache_key), so an unchanged kernel is not compiled twice."""
    jobs = jobs or os.cpu_count() or 1
    keys = [(s, a) for s in sources for a in archs]

    def cached(compiler, source, arch, options, make, lowered=None):
        key = f"minivae/cuda_build/{cache_key(compiler, source, arch, loader.SOURCES[source], options)}"
        hit = cache.get(key, None) if cache is not None else None
        if hit is not None:
            build = Build(compiler, source, arch, list(loader.SOURCES[source]), log=hit["log"], error=hit["error"],
                          lowered=lowered or hit["lowered"])
            build.usage = parse_ptxas(build.log)
            return build
        build = make()
        if cache is not None:
            cache.set(key, {"log": build.log, "error": build.error, "lowered": build.lowered})
        return build

    def nvrtc_one(key):
        source, arch = key
        return cached("nvrtc", source, arch, loader.NVRTC_OPTIONS,
                      lambda: nvrtc_build(loader.KERNELS_DIR / source, loader.SOURCES[source], arch))

    def nvcc_one(key):
        source, arch = key
        return cached("nvcc", source, arch, (), lambda: nvcc_build(
            loader.KERNELS_DIR / source, loader.SOURCES[source], arch, lowered[source]), lowered[source])

    builds = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        if "nvrtc" in compilers:
            builds.update({("nvrtc", *k): b for k, b in zip(keys, pool.map(nvrtc_one, keys))})
        if "nvcc" in compilers:
            lowered = {s: next((builds[("nvrtc", s, a)].lowered for a in archs if ("nvrtc", s, a) in builds), {})
                       for s in sources}
            builds.update({("nvcc", *k): b for k, b in zip(keys, pool.map(nvcc_one, keys))})
    return builds


_COLUMNS = (("reg", 5), ("smem", 6), ("stack", 6), ("spill", 8))   # heading, width
_GROUP = sum(w for _, w in _COLUMNS)


def _cell(u):
    if u is None:
        values = ["-"] * len(_COLUMNS)
    else:
        spill = f"{u.spill_stores}/{u.spill_loads}" if u.spill_stores or u.spill_loads else "0"
        values = [u.registers, u.smem, u.stack, spill]
    return "".join(f"{v:>{w}}" for v, (_, w) in zip(values, _COLUMNS))


def table(builds, compiler, sources, archs):
    """One compiler's table: a row per name expression, per architecture registers, static shared
    memory, stack and spill stores/loads (bytes)."""
    width = max(len(e) for s in sources for e in loader.SOURCES[s]) + 2
    lines = [f"{'':{width}}" + "".join(f"  {a:^{_GROUP}}" for a in archs),
             f"{'kernel':{width}}" + "".join("  " + "".join(f"{h:>{w}}" for h, w in _COLUMNS) for _ in archs)]
    for s in sources:
        lines.append(s)
        for e in loader.SOURCES[s]:
            lines.append(f"  {e:{width - 2}}" + "".join("  " + _cell(builds[(compiler, s, a)].kernel(e)) for a in archs))
    return "\n".join(line.rstrip() for line in lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", default=list(ARCHS))
    parser.add_argument("--source", nargs="+", default=list(loader.SOURCES), choices=list(loader.SOURCES))
    parser.add_argument("--compiler", choices=("nvrtc", "nvcc", "both"), default="both")
    args = parser.parse_args(argv)
    ok, why = nvrtc.available()
    nvcc = shutil.which("nvcc")
    compilers = [c for c in ("nvrtc", "nvcc") if args.compiler in (c, "both")]
    if "nvrtc" in compilers and not ok:
        print(f"NVRTC unavailable: {why}")
        compilers.remove("nvrtc")
    if "nvcc" in compilers and nvcc is None:
        print("nvcc not on PATH: nvcc builds skipped")
        compilers.remove("nvcc")
    if not compilers:
        return 2
    builds = build_all(args.source, args.arch, compilers)
    for compiler in compilers:
        if compiler == "nvrtc":
            title = f"{why.split(' at ')[0]}, {' '.join(loader.NVRTC_OPTIONS)} --gpu-architecture=<arch>"
        else:
            release = re.search(r"release [\d.]+, V[\d.]+", compiler_identity("nvcc"))
            title = f"nvcc {release.group(0) if release else nvcc}, -cubin -arch=<arch> -std=c++17 -I<kernels>"
        print(f"{title}  (registers; static shared, stack, spill stores/loads: bytes)")
        print(table(builds, compiler, args.source, args.arch))
        print()
    problems = [p for b in builds.values() for p in b.problems()]
    for p in problems:
        print("FAIL", p)
    print(f"{len(problems)} problem(s) in {len(builds)} builds" if problems else f"all {len(builds)} builds clean")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
