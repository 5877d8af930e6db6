/* sgemm_rate.c — the roofline for bench/run: OpenBLAS sgemm GFLOP/s on the GEMM shapes of one
 * training step of the Fashion-MNIST MLP (784-256-128-10) at batch 128, with the layouts nnlc
 * uses (row-major; a dense layer's weight W is [K, N]):
 *   forward          Y  = X[B,K] @ W[K,N]       3 products (784->256, 256->128, 128->10)
 *   input gradient   dX = dY[B,N] @ W^T         2 products (none for the input layer)
 *   weight gradient  dW = X^T @ dY[B,N]         3 products
 * The 8 products run back to back, as in a step, over and over for about SECONDS; the best of
 * REPEAT such windows is reported, once with openblas_set_num_threads(1) and once with (2).
 *
 * build: cc -O2 -o sgemm_rate bench/sgemm_rate.c -lopenblas
 * usage: sgemm_rate [SECONDS [REPEAT]]
 * prints, per thread count, "threads T gflops G step_us U gemm_flops_per_sample F", then one
 * line per shape at 1 thread. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void openblas_set_num_threads(int num_threads);

enum { B = 128, NPROD = 8 };

typedef struct {
    const char *name;
    enum CBLAS_TRANSPOSE ta, tb;
    int m, n, k;           /* C[m,n] = op(A)[m,k] @ op(B)[k,n] */
    float *a, *b, *c;
    int lda, ldb;
} Prod;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *alloc(size_t n)
{
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, n * sizeof *p) != 0) {
        fprintf(stderr, "sgemm_rate: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

static void run(const Prod *p)
{
    cblas_sgemm(CblasRowMajor, p->ta, p->tb, p->m, p->n, p->k, 1.0f, p->a, p->lda, p->b,
                p->ldb, 0.0f, p->c, p->n);
}

/* seconds per call of the products [lo, hi): best of `repeat` runs of about `secs` each */
static double time_prods(const Prod *p, int lo, int hi, double secs, int repeat)
{
    double best = 1e30;
    for (int r = 0; r < repeat; r++) {
        long iters = 0;
        double t0 = now(), t;
        do {
            for (int i = lo; i < hi; i++)
                run(&p[i]);
            iters++;
            t = now() - t0;
        } while (t < secs);
        if (t / (double)iters < best)
            best = t / (double)iters;
    }
    return best;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0.5;
    int repeat = argc > 2 ? atoi(argv[2]) : 3;
    if (secs <= 0 || repeat < 1) {
        fprintf(stderr, "usage: sgemm_rate [SECONDS [REPEAT]]\n");
        return 2;
    }
    const int dims[4] = {784, 256, 128, 10};
    float *x[3], *w[3], *y[3], *dy[3], *dx[3], *dw[3];
    for (int l = 0; l < 3; l++) {
        int k = dims[l], n = dims[l + 1];
        x[l] = alloc((size_t)B * k);
        w[l] = alloc((size_t)k * n);
        y[l] = alloc((size_t)B * n);
        dy[l] = alloc((size_t)B * n);
        dx[l] = alloc((size_t)B * k);
        dw[l] = alloc((size_t)k * n);
    }
    Prod p[NPROD];
    int np = 0;
    static const char *fwd[3] = {"fwd    X@W1    128x784 @ 784x256", "fwd    H1@W2   128x256 @ 256x128",
                                 "fwd    H2@W3   128x128 @ 128x10"};
    static const char *bwd[3] = {"", "dX     dY2@W2^T 128x128 @ (256x128)^T",
                                 "dX     dY3@W3^T 128x10 @ (128x10)^T"};
    static const char *wg[3] = {"dW     X^T@dY1  (128x784)^T @ 128x256",
                                "dW     H1^T@dY2 (128x256)^T @ 128x128",
                                "dW     H2^T@dY3 (128x128)^T @ 128x10"};
    for (int l = 0; l < 3; l++) /* forward: Y[B,N] = X[B,K] @ W[K,N] */
        p[np++] = (Prod){fwd[l], CblasNoTrans, CblasNoTrans, B, dims[l + 1], dims[l],
                         x[l], w[l], y[l], dims[l], dims[l + 1]};
    for (int l = 2; l >= 1; l--) /* input gradient: dX[B,K] = dY[B,N] @ W[K,N]^T */
        p[np++] = (Prod){bwd[l], CblasNoTrans, CblasTrans, B, dims[l], dims[l + 1],
                         dy[l], w[l], dx[l], dims[l + 1], dims[l + 1]};
    for (int l = 2; l >= 0; l--) /* weight gradient: dW[K,N] = X[B,K]^T @ dY[B,N] */
        p[np++] = (Prod){wg[l], CblasTrans, CblasNoTrans, dims[l], dims[l + 1], B,
                         x[l], dy[l], dw[l], dims[l], dims[l + 1]};

    double flops = 0, fl[NPROD];
    for (int i = 0; i < np; i++)
        flops += fl[i] = 2.0 * p[i].m * p[i].n * p[i].k;

    for (int threads = 1; threads <= 2; threads++) {
        openblas_set_num_threads(threads);
        time_prods(p, 0, np, 0.1, 1); /* warm up */
        double t = time_prods(p, 0, np, secs, repeat);
        printf("threads %d gflops %.2f step_us %.1f gemm_flops_per_sample %.0f\n", threads,
               flops / t * 1e-9, t * 1e6, flops / B);
    }
    openblas_set_num_threads(1);
    for (int i = 0; i < np; i++) {
        double t = time_prods(p, i, i + 1, secs / 4, repeat);
        printf("shape %-40s %6.2f GFLOP/s\n", p[i].name, fl[i] / t * 1e-9);
    }
    return 0;
}
