"""The stored step's matrix products in Caffe's OpenBLAS against another BLAS (docs/BENCHMARKS.md,
"CPU speed against the GEMM peak"): each product timed through cblas_sgemm in both, alternated,
best of three rounds, so that a shared machine loads both alike and only their ratio counts.

    apt-get download libblis4-pthread && dpkg-deb -x libblis4-pthread_*.deb blis
    OPENBLAS_NUM_THREADS=2 BLIS_NUM_THREADS=2 python tools/lab/compare_blas.py blis/usr/lib/x86_64-linux-gnu/blis-pthread/libblis.so.4
"""
import ctypes
import sys
import time

import numpy as np

libs = {"openblas": ctypes.CDLL("/lib/x86_64-linux-gnu/libopenblas.so.0"), "blis": ctypes.CDLL(sys.argv[1])}
F = ctypes.POINTER(ctypes.c_float)
def sgemm(lib, ta, tb, M, N, K, A, B, C):
    # row-major 101, NoTrans 111, Trans 112
    lib.cblas_sgemm(101, 112 if ta else 111, 112 if tb else 111, M, N, K, ctypes.c_float(1.0),
                    A.ctypes.data_as(F), A.shape[1], B.ctypes.data_as(F), B.shape[1], ctypes.c_float(0.0),
                    C.ctypes.data_as(F), C.shape[1])
rng = np.random.RandomState(0)
cases = {
 # conv_final forward per image: W (1000x512) x X (512x169)
 "conv_final fwd 1000x169x512": (False, False, 1000, 169, 512),
 # weight grad: dY (1000x169) x X^T (169x512)
 "conv_final wgrad 1000x512x169": (False, True, 1000, 512, 169),
 # data grad: W^T (512x1000) x dY (1000x169)
 "conv_final dgrad 512x169x1000": (True, False, 512, 169, 1000),
 "fire9 expand3x3 fwd 256x169x576": (False, False, 256, 169, 576),
 "square 4096": (False, False, 4096, 4096, 4096),
}
for name, (ta, tb, M, N, K) in cases.items():
    A = rng.rand(K, M).astype(np.float32) if ta else rng.rand(M, K).astype(np.float32)
    B = rng.rand(N, K).astype(np.float32) if tb else rng.rand(K, N).astype(np.float32)
    C = np.zeros((M, N), np.float32)
    reps = 2 if M == 4096 else 200
    best = {}
    for rnd in range(3):
        for lib in libs:
            sgemm(libs[lib], ta, tb, M, N, K, A, B, C)
            t0 = time.perf_counter()
            for _ in range(reps):
                sgemm(libs[lib], ta, tb, M, N, K, A, B, C)
            dt = (time.perf_counter() - t0) / reps
            best[lib] = min(best.get(lib, 1e9), dt)
    g = {lib: 2 * M * N * K / t / 1e9 for lib, t in best.items()}
    print("%-34s openblas %6.1f GFLOPS  blis %6.1f GFLOPS  blis/openblas %.2f" % (name, g["openblas"], g["blis"], g["blis"] / g["openblas"]))
