/* conv_rate.c — the two ways runtime/conv.c can compute a float convolution's forward pass,
 * on the same shapes, for bench/run: im2col + one sgemm per chunk of samples (OpenBLAS, one
 * thread, as the runtime calls it) and the direct AVX2/FMA kernel (nnlrt_conv_set_direct).
 * The input's gradient is timed too (im2col + sgemm + col2im, the only way it is computed).
 * Shapes: LeNet's two layers (bench/fashion_cnn.nnl) and some wider ones, batch 64.
 *
 * build: cc -O2 -I runtime -o conv_rate bench/conv_rate.c build/runtime/libnnlrt.a \
 *            -lopenblas -lz -lm
 * usage: conv_rate [REPEAT]      (the best of REPEAT calls of each, default 20)
 * prints one line per shape:
 *   "conv C H W F KHxKW pad P: im2col_ms A direct_ms D ratio A/D dx_ms X"
 * (ratio > 1: the direct kernel is faster; without AVX2 both are im2col + sgemm), and
 * "direct: yes|no (this CPU has AVX2 and FMA)". */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nnlrt.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float *randoms(size_t n, double shift)
{
    float *p = malloc(sizeof(float) * n);
    if (!p) {
        fprintf(stderr, "conv_rate: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((double)rand() / RAND_MAX - shift);
    return p;
}

int main(int argc, char **argv)
{
    static const int shapes[][6] = {
        /* C, H (= W), F, K, pad */
        {1, 28, 6, 5, 2}, {6, 14, 16, 5, 0}, {3, 32, 32, 3, 1},
        {32, 16, 64, 3, 1}, {64, 8, 128, 3, 1}, {128, 8, 128, 3, 1},
    };
    int repeat = argc > 1 ? atoi(argv[1]) : 20;
    if (repeat < 1) {
        fprintf(stderr, "usage: conv_rate [REPEAT]\n");
        return 2;
    }
    const int B = 64;
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        int C = shapes[k][0], H = shapes[k][1], F = shapes[k][2], K = shapes[k][3];
        int pad = shapes[k][4], OH = H + 2 * pad - K + 1;
        size_t nx = (size_t)B * C * H * H, ny = (size_t)B * F * OH * OH;
        float *x = randoms(nx, 0), *w = randoms((size_t)F * C * K * K, 0.5);
        float *y[2] = {randoms(ny, 0), randoms(ny, 0)}, *dx = randoms(nx, 0);
        double best[3] = {INFINITY, INFINITY, INFINITY};
        for (int r = 0; r < repeat; r++) {
            for (int mode = 0; mode < 2; mode++) {
                nnlrt_conv_set_direct(mode);
                double t0 = now();
                nnlrt_conv2d_f32(x, w, NULL, y[mode], 0, B, C, H, H, F, K, K, 1, pad);
                best[mode] = fmin(best[mode], now() - t0);
            }
            double t0 = now();
            nnlrt_conv2d_dx_f32(y[0], w, dx, B, C, H, H, F, K, K, 1, pad);
            best[2] = fmin(best[2], now() - t0);
        }
        double diff = 0;
        for (size_t i = 0; i < ny; i++)
            diff = fmax(diff, fabs((double)y[0][i] - (double)y[1][i]));
        if (diff > 1e-3) {
            fprintf(stderr, "conv_rate: the two ways differ by %g\n", diff);
            return 1;
        }
        printf("conv C %d H %d W %d F %d %dx%d pad %d: im2col_ms %.3f direct_ms %.3f ratio %.2f "
               "dx_ms %.3f\n", C, H, H, F, K, K, pad, best[0] * 1e3, best[1] * 1e3,
               best[0] / best[1], best[2] * 1e3);
        free(x), free(w), free(y[0]), free(y[1]), free(dx);
    }
    printf("direct: %s (this CPU %s AVX2 and FMA)\n", avx2 ? "yes" : "no",
           avx2 ? "has" : "lacks");
    return 0;
}
