/* parallel.c — the runtime's worker threads: a routine splits its work into tasks (a few
 * samples each, a number that does not depend on how many threads there are) and
 * nnlrt_parallel runs them on the calling thread and the workers.
 *
 * Results never depend on the thread count: every task writes its own part of the output,
 * and a sum over tasks (a convolution's weight gradient) is made by the caller, in task
 * order, from one partial result per task.
 *
 * The workers are started on first use, one fewer than the CPUs this process may run on
 * (sched_getaffinity), at most NNLRT_MAX_THREADS − 1; NNL_THREADS=N sets the total (1: no
 * workers). OpenBLAS's own threads (the dense layers' products) are OpenBLAS's business:
 * OPENBLAS_NUM_THREADS. Between calls a worker spins briefly (a training step calls several routines in
 * a row), then sleeps on a condition variable.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "nnlrt_int.h"

enum { NNLRT_MAX_THREADS = 16, PAR_SPIN = 2000 };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int nthreads;                  /* the calling thread and the workers; 0: not started */
    /* the job: tasks [0, ntasks) of fn(ctx, task) */
    NnlrtTaskFn fn;
    void *ctx;
    int64_t ntasks;
    atomic_llong next;             /* the next task to take */
    atomic_llong done;             /* tasks finished */
    atomic_uint generation;        /* increased for every job */
    atomic_int busy;               /* workers inside a job: a new job waits for 0 */
    atomic_flag taken;             /* a job is running: another caller runs its own tasks */
} par = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
           .taken = ATOMIC_FLAG_INIT};

static void par_run_tasks(void)
{
    for (;;) {
        long long t = atomic_fetch_add(&par.next, 1);
        if (t >= par.ntasks)
            return;
        par.fn(par.ctx, t);
        atomic_fetch_add(&par.done, 1);
    }
}

static void *par_worker(void *arg)
{
    (void)arg;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load(&par.generation);
        for (int spin = 0; g == seen && spin < PAR_SPIN; spin++) {
            __builtin_ia32_pause();
            g = atomic_load(&par.generation);
        }
        if (g == seen) {
            pthread_mutex_lock(&par.lock);
            while ((g = atomic_load(&par.generation)) == seen)
                pthread_cond_wait(&par.wake, &par.lock);
            pthread_mutex_unlock(&par.lock);
        }
        seen = g;
        atomic_fetch_add(&par.busy, 1);
        if (atomic_load(&par.generation) == g) /* else a newer job came: take that one */
            par_run_tasks();
        atomic_fetch_sub(&par.busy, 1);
    }
    return NULL;
}

/* NNL_THREADS: 0 when unset or empty, -1 when it is not a whole number from 1 to
 * NNLRT_MAX_THREADS, else its value. */
static int par_setting(void)
{
    const char *env = getenv("NNL_THREADS");
    if (!env || !*env)
        return 0;
    char *end;
    long n = strtol(env, &end, 10);
    if (*end || n < 1 || n > NNLRT_MAX_THREADS || env[0] < '0' || env[0] > '9')
        return -1;
    return (int)n;
}

/* nnlc and trainers refuse a bad value (exit 2), as NNL_FAIL_ALLOC's, rather than ignore
 * it. A --lib object, inside someone else's program, never exits: it uses the default. */
void nnlrt_threads_check(void)
{
    if (par_setting() >= 0)
        return;
    fprintf(stderr, "%s: error: NNL_THREADS must be a whole number from 1 to %d, not '%s'\n",
            nnlrt_program_name(), NNLRT_MAX_THREADS, getenv("NNL_THREADS"));
    exit(NNLRT_EIO);
}

static int par_wanted(void)
{
    int n = par_setting();
    if (n > 0)
        return n;
    cpu_set_t set;
    n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    return n < 1 ? 1 : n < NNLRT_MAX_THREADS ? n : NNLRT_MAX_THREADS;
}

static void par_start(void)
{
    int want = par_wanted();
    par.nthreads = 1;
    for (int i = 1; i < want; i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        bool ok = pthread_create(&t, &attr, par_worker, NULL) == 0;
        pthread_attr_destroy(&attr);
        if (!ok)
            break; /* fewer workers: the same results, later */
        par.nthreads++;
    }
}

int nnlrt_threads(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, par_start);
    return par.nthreads;
}

void nnlrt_parallel(int64_t ntasks, NnlrtTaskFn fn, void *ctx)
{
    if (ntasks <= 0)
        return;
    /* one job at a time: a call from another thread (an embedding program's), or from a
     * task, while one runs does its tasks itself */
    if (ntasks == 1 || nnlrt_threads() == 1 || atomic_flag_test_and_set(&par.taken)) {
        for (int64_t t = 0; t < ntasks; t++)
            fn(ctx, t);
        return;
    }
    while (atomic_load(&par.busy) > 0) /* a late worker still leaving the last job */
        __builtin_ia32_pause();
    par.fn = fn;
    par.ctx = ctx;
    par.ntasks = ntasks;
    atomic_store(&par.done, 0);
    atomic_store(&par.next, 0);
    pthread_mutex_lock(&par.lock);
    atomic_fetch_add(&par.generation, 1);
    pthread_cond_broadcast(&par.wake);
    pthread_mutex_unlock(&par.lock);
    par_run_tasks();
    while (atomic_load(&par.done) < ntasks || atomic_load(&par.busy) > 0)
        __builtin_ia32_pause();
    atomic_flag_clear(&par.taken);
}
