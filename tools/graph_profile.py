"""Where a CUDA-graph training step's time goes: PyTorch's profiler over one launch of the graph of each
benchmark VAE (benchmarks/gpu_step.py's models), its kernels grouped by name, cuBLAS's together.

    python tools/graph_profile.py [--batches 128 4096] [--precision highest high] [--lt] [--one-stream] [--tiled [--tune]]

--lt captures with the experimental switch on (MINIVAE_CUBLASLT=1: the dense layers and products as
cuBLASLt calls), --one-stream without the second stream for the weight gradients (MINIVAE_SIDE_STREAM=0),
--tiled with the full-precision products by minivae's own kernels/gemm.cu (MINIVAE_GEMM=tiled; grouped as
"gemm_tiles", apart from cuBLAS's), --tune with their splits timed first (MINIVAE_GEMM_TUNE=1; the choices
are printed at the end), as the step benchmark's ", Lt", ", one stream", ", tiled" and ", tiled, tuned" rows do.

For each case: µs a step (median of 5 loops of 50 steps), the kernels one launch runs, the sum of their
durations ("busy": the step is bound by its kernels where this is close to the step's time, by launches
where it is well below), and the 12 costliest groups. Needs CuPy, a GPU and PyTorch with CUPTI.
"""
import argparse
import collections
import functools
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[128, 4096])
    p.add_argument("--precision", nargs="+", default=["highest"], choices=["highest", "high"])
    p.add_argument("--lt", action="store_true", help="dense layers and products as cuBLASLt calls")
    p.add_argument("--one-stream", action="store_true", help="the weight gradients on the main stream, not a second one")
    p.add_argument("--tiled", action="store_true", help="full-precision products by kernels/gemm.cu")
    p.add_argument("--tune", action="store_true", help="with --tiled: each product's split timed on its first call")
    args = p.parse_args(argv)
    if args.tune and not args.tiled:
        p.error("--tune times the splits of --tiled's products: give both")
    import gpu_step
    from gpu_kernels import gpu_and_torch, timed
    found = gpu_and_torch("tools/graph_profile.py")  # says on stderr why not, where CuPy or a GPU is missing
    if found is None:
        return 1
    if found[1] is None:
        print("tools/graph_profile.py needs PyTorch beside CuPy, for its profiler", file=sys.stderr)
        return 1
    for precision in args.precision:
        for kind in ("gaussian", "categorical"):
            for batch in args.batches:
                step = gpu_step.experimental(functools.partial(gpu_step.minivae_graph, kind, batch, precision),
                                             lt=args.lt, side=not args.one_stream, tiled=args.tiled, tune=args.tune)
                us = 1e3 * timed(step, 5, 50, warmup=5)
                ks = gpu_step.cuda_activity(step)
                if ks is None:
                    print("tools/graph_profile.py: this PyTorch's profiler cannot trace the GPU (no CUPTI)", file=sys.stderr)
                    return 1
                groups = collections.defaultdict(lambda: [0, 0.0])
                for name, d in ks:
                    key = ("gemm_tiles" if "gemm_tiles" in name else
                           "gemm/cuBLAS" if any(w in name for w in ("gemm", "splitK")) else name[:60])
                    groups[key][0] += 1
                    groups[key][1] += d
                switches = "".join(f", {name}" for name, on in (("Lt", args.lt), ("one stream", args.one_stream),
                                                                ("tiled", args.tiled), ("tuned", args.tune)) if on)
                print(f"\n## {kind} b{batch} {precision}{switches}: step {us:.1f} us; {len(ks)} kernels, "
                      f"busy {sum(d for _, d in ks):.1f} us", flush=True)
                for name, (n, d) in sorted(groups.items(), key=lambda kv: -kv[1][1])[:12]:
                    print(f"  {d:8.1f} x{n:<3d} {name}")
    if args.tune:
        from minivae._gpu import tiled
        print("\nsplits of the tuned products:\n  " + "\n  ".join(tiled.tuned()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
