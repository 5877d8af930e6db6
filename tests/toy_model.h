/* toy_model.h — the model the runtime's tests train, written by hand in C where a compiled
 * one would be: linear regression y = x·W + b with X inputs and Y outputs, the loss the sum
 * of squared errors, one metric (the sum of absolute errors), SGD with momentum (one
 * optimizer state). Float or double, as the element size says.
 *
 * Parameters: "lin.W" [X, Y] (row-major) at 0, then "lin.b" [Y]. Buffers after the fixed
 * ones: NNLRT_BUF_FIRST holds the predictions (Y a sample, batched), the next one the
 * gradient being summed (not batched), so that the runtime allocates both kinds.
 *
 * One model at a time: toy_model() sets every knob of `toy` to its default and clears what
 * the model records; a test changes knobs after it.
 */
#ifndef TOY_MODEL_H
#define TOY_MODEL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "nnlrt.h"

enum { TOY_BUF_PRED = NNLRT_BUF_FIRST, TOY_BUF_SUM, TOY_BUFS };

static struct {
    /* knobs */
    double lr, momentum; /* 0.1 and 0.5 */
    bool schedule;       /* lr / (1 + 0.05 step), times 0.7 in odd epochs: a resume with
                          * the wrong step or epoch shows */
    int64_t nan_at;      /* the grad call (counting from toy_model) whose loss is NaN; 0: none */
    bool wrong_grad;     /* lin.b's gradient 10% too large, for the gradient check */
    void (*before_update)(int64_t step); /* called first by every update */
    /* what the model saw */
    int64_t grad_calls, last_step, last_epoch;
    bool misaligned; /* a buffer not 64-byte aligned */
    bool bad_order;  /* an update whose step is not the last one's + 1, or an earlier epoch */
    /* the model */
    int elem;
    int64_t x_size, y_size;
    NnlrtTensor tensors[2];
    int64_t buf_elems[TOY_BUFS];
    bool buf_batched[TOY_BUFS];
} toy;

/* The second name is there for a test that claims two metrics. */
static const char *const toy_metric_names[] = {"mae", "mae2"};

static inline double toy_get(const void *buf, int64_t i)
{
    return toy.elem == 4 ? ((const float *)buf)[i] : ((const double *)buf)[i];
}

static inline void toy_set(void *buf, int64_t i, double v)
{
    if (toy.elem == 4)
        ((float *)buf)[i] = (float)v;
    else
        ((double *)buf)[i] = v;
}

static inline int64_t toy_n_params(void)
{
    return toy.x_size * toy.y_size + toy.y_size;
}

static inline void toy_init(void **bufs, NnlrtRng *rng)
{
    for (int64_t i = 0; i < toy_n_params(); i++)
        toy_set(bufs[NNLRT_BUF_PARAMS], i, 2 * nnlrt_rand_uniform(rng) - 1);
}

/* pred[B, Y] = x[B, X] · W[X, Y] + b; adds the loss and the metric's sums. */
static inline void toy_forward(void **bufs, int64_t B, double *sums)
{
    const void *p = bufs[NNLRT_BUF_PARAMS], *x = bufs[NNLRT_BUF_X], *y = bufs[NNLRT_BUF_Y];
    int64_t X = toy.x_size, Y = toy.y_size;
    for (int i = 0; i < TOY_BUFS; i++)
        toy.misaligned = toy.misaligned || (uintptr_t)bufs[i] % 64 != 0;
    for (int64_t k = 0; k < B; k++)
        for (int64_t j = 0; j < Y; j++) {
            double pred = toy_get(p, X * Y + j);
            for (int64_t i = 0; i < X; i++)
                pred += toy_get(p, i * Y + j) * toy_get(x, X * k + i);
            toy_set(bufs[TOY_BUF_PRED], Y * k + j, pred);
            double e = pred - toy_get(y, Y * k + j);
            sums[0] += e * e;
            sums[1] += fabs(e);
        }
}

static inline void toy_grad(void **bufs, int64_t B, double *sums, uint64_t key)
{
    (void)key;
    toy_forward(bufs, B, sums);
    if (++toy.grad_calls == toy.nan_at)
        sums[0] = NAN;
    const void *x = bufs[NNLRT_BUF_X], *y = bufs[NNLRT_BUF_Y];
    void *g = bufs[TOY_BUF_SUM];
    int64_t X = toy.x_size, Y = toy.y_size, n = toy_n_params();
    for (int64_t i = 0; i < n; i++)
        toy_set(g, i, 0);
    for (int64_t k = 0; k < B; k++)
        for (int64_t j = 0; j < Y; j++) {
            double d = 2 * (toy_get(bufs[TOY_BUF_PRED], Y * k + j) - toy_get(y, Y * k + j)) /
                       (double)B;
            for (int64_t i = 0; i < X; i++)
                toy_set(g, i * Y + j, toy_get(g, i * Y + j) + d * toy_get(x, X * k + i));
            toy_set(g, X * Y + j, toy_get(g, X * Y + j) + d);
        }
    for (int64_t i = 0; i < n; i++)
        toy_set(bufs[NNLRT_BUF_GRADS], i,
                toy_get(g, i) * (toy.wrong_grad && i >= X * Y ? 1.1 : 1));
}

static inline double toy_update(void **bufs, void **states, int64_t step, int64_t epoch)
{
    if (toy.before_update)
        toy.before_update(step);
    toy.bad_order = toy.bad_order || step != toy.last_step + 1 || epoch < toy.last_epoch;
    toy.last_step = step;
    toy.last_epoch = epoch;
    double lr = toy.lr;
    if (toy.schedule)
        lr = lr / (1 + 0.05 * (double)step) * (epoch % 2 ? 0.7 : 1);
    double g2 = 0;
    for (int64_t i = 0; i < toy_n_params(); i++) {
        double g = toy_get(bufs[NNLRT_BUF_GRADS], i);
        double v = toy.momentum * toy_get(states[0], i) + g;
        toy_set(states[0], i, v);
        toy_set(bufs[NNLRT_BUF_PARAMS], i, toy_get(bufs[NNLRT_BUF_PARAMS], i) - lr * v);
        g2 += g * g;
    }
    return g2;
}

static inline void toy_eval(void **bufs, int64_t B, double *sums)
{
    toy_forward(bufs, B, sums);
}

/* The model with x_size inputs and y_size outputs, elements of elem_size bytes; every knob
 * at its default. */
static inline NnlrtModel toy_model(int elem_size, int64_t x_size, int64_t y_size)
{
    int64_t X = x_size, Y = y_size;
    toy.lr = 0.1;
    toy.momentum = 0.5;
    toy.schedule = toy.wrong_grad = toy.misaligned = toy.bad_order = false;
    toy.nan_at = toy.grad_calls = toy.last_step = toy.last_epoch = 0;
    toy.before_update = NULL;
    toy.elem = elem_size;
    toy.x_size = X;
    toy.y_size = Y;
    toy.tensors[0] = (NnlrtTensor){"lin.W", 2, {X, Y}, 0, X * Y, false};
    toy.tensors[1] = (NnlrtTensor){"lin.b", 1, {Y}, X * Y, Y, false};
    toy.buf_elems[TOY_BUF_PRED] = Y;
    toy.buf_batched[TOY_BUF_PRED] = true;
    toy.buf_elems[TOY_BUF_SUM] = X * Y + Y;
    return (NnlrtModel){
        .elem_size = elem_size,
        .n_params = X * Y + Y,
        .n_tensors = 2,
        .tensors = toy.tensors,
        .n_states = 1,
        .x_size = X,
        .y_size = Y,
        .target_kind = NNLRT_TARGET_VALUES,
        .n_metrics = 1,
        .metric_names = toy_metric_names,
        .n_bufs = TOY_BUFS,
        .buf_elems = toy.buf_elems,
        .buf_batched = toy.buf_batched,
        .init = toy_init,
        .grad = toy_grad,
        .update = toy_update,
        .eval = toy_eval,
    };
}

#endif
