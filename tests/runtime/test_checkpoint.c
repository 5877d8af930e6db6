/* test_checkpoint.c — unit tests of libnnlrt's checkpoints: bit-exact resume after a stop
 * at every step, refusal of every truncation and of bit flips, of another model's
 * checkpoint, atomic writes under injected and real failures, stale temp files, rotation
 * (keep), and SIGINT/SIGTERM delivered to a training child.
 *
 *   test_checkpoint GROUP    GROUP: a name in the table at the end
 *
 * The model is tests/toy_model.h's (linear regression with a momentum state), with an
 * update that depends on the step and the epoch, trained on a data set made here with
 * shuffling and a last batch shorter than the others. Every file is written into the
 * temporary directory of tests/check.h, removed at the end. Messages are captured and
 * compared whole where they are fixed.
 */
#define _DEFAULT_SOURCE /* nanosleep */
#include "check.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <zlib.h>

#include "nnlrt.h"
#include "nnlrt_int.h"
#include "toy_model.h"

/* ---- helpers ---- */

/* The whole file (with a NUL after it; caller frees) and its length, or NULL. */
static uint8_t *slurp(const char *path, size_t *len)
{
    return (uint8_t *)check_read_file(path, len);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *data = slurp(from, &n);
    EXPECT(data && check_write_file(to, data, n), "copy %s to %s", from, to);
    free(data);
}

/* Entries of `dir` whose name has ".tmp." in it. */
static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

/* The step recorded in a checkpoint's header (i64 at byte 48), or -1. */
static int64_t ckpt_step(const char *path)
{
    size_t n;
    uint8_t *data = slurp(path, &n);
    int64_t step = -1;
    if (data && n >= 56) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
            v = v << 8 | data[48 + i];
        step = (int64_t)v;
    }
    free(data);
    return step;
}

/* ---- the model: tests/toy_model.h, two inputs and one output, with a learning rate that
 * depends on the step and the epoch (so that a resume with either wrong shows) ---- */

static int64_t tm_notify_step; /* update of this step writes a byte to tm_notify_fd, waits */
static int tm_notify_fd = -1;
static int tm_token_fd = -1;   /* each update first reads a byte from it (blocking) */
static int tm_ack_fd = -1;     /* and then writes one to this */

static void tm_wait(void)
{
    char c = 'x';
    if (write(tm_notify_fd, &c, 1) != 1)
        return;
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL); /* a signal ends it early */
}

static void tm_before_update(int64_t step)
{
    if (step == tm_notify_step && tm_notify_fd >= 0)
        tm_wait();
    char c;
    if (tm_token_fd >= 0 && read(tm_token_fd, &c, 1) == 1 && write(tm_ack_fd, &c, 1) != 1)
        tm_token_fd = -1;
}

/* their table in a checkpoint: 4 + (4 + 5 + 4 + 16 + 16) + (4 + 5 + 4 + 8 + 16) bytes */
enum { TM_TABLE = 86 };

/* the options the runs of good_checkpoint record: 4 + (4 + 5) + (4 + 8) + (4 + 5) + (4 + 7)
 * bytes */
static const char *const tm_options[] = {"--set", "epochs=3", "--log", "fit csv"};
enum { TM_OPTIONS = 45 };

static NnlrtModel tm_model(int elem_size)
{
    NnlrtModel m = toy_model(elem_size, 2, 1);
    toy.schedule = true;
    toy.before_update = tm_before_update;
    return m;
}

/* ---- data: 37 training samples (5 batches of 8, the last of 5), 11 for validation ---- */

static NnlrtDataset train_set, val_set;

static void make_set(NnlrtDataset *ds, int64_t n, uint64_t seed)
{
    memset(ds, 0, sizeof *ds);
    ds->name = nnlrt_strdup("made");
    ds->n = n;
    ds->x_size = 2;
    ds->y_size = 1;
    ds->x_type = ds->y_type = NNLRT_F32;
    ds->x_scale = 1;
    float *x = nnlrt_alloc((size_t)n * 2 * sizeof(float));
    float *y = nnlrt_alloc((size_t)n * sizeof(float));
    NnlrtRng rng;
    nnlrt_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) {
        x[2 * i] = (float)(2 * nnlrt_rand_uniform(&rng) - 1);
        x[2 * i + 1] = (float)(2 * nnlrt_rand_uniform(&rng) - 1);
        y[i] = (float)(2 * x[2 * i] - 3 * x[2 * i + 1] + 0.5 + 0.1 * nnlrt_rand_normal(&rng));
    }
    ds->x = x;
    ds->y = y;
}

enum { EPOCHS = 3, STEPS = 15 };

static NnlrtTrainConfig base_config(void)
{
    /* fresh: the runs here start over on the path of the one before on purpose */
    return (NnlrtTrainConfig){.epochs = EPOCHS, .batch = 8, .seed = 7, .shuffle = true,
                              .quiet = true, .fresh = true};
}

/* An uninterrupted run's parameters and log, into ref.params and ref.log. */
static bool reference(const NnlrtModel *m, NnlrtTrainConfig cfg, const NnlrtDataset *val)
{
    remove(check_tmp_path("ref.log"));
    cfg.log_path = check_tmp_path("ref.log");
    cfg.dump_path = check_tmp_path("ref.params");
    check_clear();
    int rc = nnlrt_train(m, &cfg, &train_set, val);
    EXPECT(rc == 0, "reference run: %d %s", rc, check_message);
    return rc == 0;
}

/* The run's parameters and log are the reference's, byte for byte. */
static void expect_reference(const char *what)
{
    EXPECT(check_same_file(check_tmp_path("run.params"), check_tmp_path("ref.params")),
           "%s: parameters", what);
    EXPECT(check_same_file(check_tmp_path("run.log"), check_tmp_path("ref.log")), "%s: log", what);
}

static void remove_run_files(void)
{
    remove(check_tmp_path("ck"));
    remove(check_tmp_path("run.log"));
    remove(check_tmp_path("run.params"));
}

/* The reference's config, writing run.log and run.params, checkpoints in ck. */
static NnlrtTrainConfig run_config(NnlrtTrainConfig cfg)
{
    cfg.log_path = check_tmp_path("run.log");
    cfg.dump_path = check_tmp_path("run.params");
    cfg.checkpoint_path = check_tmp_path("ck");
    return cfg;
}

/* Stops after step k: exit code 130, a checkpoint, no parameter file. */
static bool stop_at(const NnlrtModel *m, NnlrtTrainConfig cfg, const NnlrtDataset *val,
                    int64_t k)
{
    cfg.stop_after_steps = k;
    check_clear();
    int rc = nnlrt_train(m, &cfg, &train_set, val);
    EXPECT(rc == NNLRT_EINT, "stop after %lld: exit code %d (%s)", (long long)k, rc, check_message);
    char want[128];
    snprintf(want, sizeof want, "nnlc: error: stopped by stop_after_steps after step %lld ",
             (long long)k);
    EXPECT(strncmp(check_message, want, strlen(want)) == 0, "stop message '%s'", check_message);
    EXPECT(!exists(cfg.dump_path), "stop after %lld: no parameters written", (long long)k);
    return rc == NNLRT_EINT;
}

static int resume(const NnlrtModel *m, NnlrtTrainConfig cfg, const NnlrtDataset *val)
{
    cfg.resume_path = check_tmp_path("ck");
    check_clear();
    return nnlrt_train(m, &cfg, &train_set, val);
}

/* ---- (a) resume: stopped after any step, the same parameters and log bytes ---- */

static void test_resume_every_step(int elem, int64_t log_every, const NnlrtDataset *val)
{
    NnlrtModel m = tm_model(elem);
    NnlrtTrainConfig cfg = base_config();
    cfg.log_every = log_every;
    if (!reference(&m, cfg, val))
        return;
    for (int64_t k = 1; k <= STEPS; k++) {
        remove_run_files();
        NnlrtTrainConfig run = run_config(cfg);
        if (!stop_at(&m, run, val, k))
            continue;
        int rc = resume(&m, run, val);
        EXPECT(rc == 0, "resume after step %lld: %d %s", (long long)k, rc, check_message);
        char what[128];
        snprintf(what, sizeof what, "float%d, log_every %lld, %s validation, stop after %lld",
                 elem * 8, (long long)log_every, val ? "with" : "no", (long long)k);
        expect_reference(what);
    }
}

/* Several stops in one run; then a checkpoint older than the log (the run went on after
 * it and was killed): the rows after it are cut off and written again. */
static void test_resume_chained(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = base_config();
    cfg.log_every = 3;
    if (!reference(&m, cfg, &val_set))
        return;
    remove_run_files();
    NnlrtTrainConfig run = run_config(cfg);
    run.resume_path = NULL;
    stop_at(&m, run, &val_set, 3);
    run.resume_path = check_tmp_path("ck");
    stop_at(&m, run, &val_set, 8);
    stop_at(&m, run, &val_set, 14);
    run.resume_path = NULL;
    EXPECT(resume(&m, run, &val_set) == 0, "chained: %s", check_message);
    expect_reference("stops after 3, 8, 14");

    remove_run_files();
    stop_at(&m, run, &val_set, 4);
    copy_file(check_tmp_path("ck"), check_tmp_path("ck4"));
    run.resume_path = check_tmp_path("ck");
    stop_at(&m, run, &val_set, 11);
    copy_file(check_tmp_path("ck4"), check_tmp_path("ck"));
    run.resume_path = NULL;
    EXPECT(resume(&m, run, &val_set) == 0, "older checkpoint: %s", check_message);
    expect_reference("log rows after the checkpoint cut off");
}

/* A log that is not the stopped run's is refused; a missing one is started afresh. */
static void test_resume_log(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = base_config();
    if (!reference(&m, cfg, &val_set))
        return;
    remove_run_files();
    NnlrtTrainConfig run = run_config(cfg);
    stop_at(&m, run, &val_set, 11);
    size_t n;
    uint8_t *log = slurp(run.log_path, &n);
    EXPECT(log && n > 20, "log after the stop");
    if (!log)
        return;
    log[n - 3] ^= 1;
    check_write_file(run.log_path, log, n);
    EXPECT(resume(&m, run, &val_set) == NNLRT_EUSER, "changed log refused");
    char want[256];
    snprintf(want, sizeof want, ": error: is not the log of the run being resumed: it had %zu "
             "bytes when the checkpoint was written, and its first ones differ now; give another "
             "log file (one that does not exist is started afresh)", n);
    EXPECT_MESSAGE(run.log_path, want);
    EXPECT(!exists(run.dump_path), "nothing trained");
    check_write_file(run.log_path, log, 10);
    EXPECT(resume(&m, run, &val_set) == NNLRT_EUSER, "short log refused");
    EXPECT(strstr(check_message, "and now has fewer;"), "message '%s'", check_message);
    free(log);

    remove(run.log_path);
    EXPECT(resume(&m, run, &val_set) == 0, "missing log: %s", check_message);
    size_t nr, nl;
    uint8_t *ref = slurp(check_tmp_path("ref.log"), &nr), *got = slurp(run.log_path, &nl);
    size_t header = ref ? strcspn((char *)ref, "\n") + 1 : 0;
    EXPECT(ref && got && nl > header && nl < nr && memcmp(got, ref, header) == 0 &&
               memcmp(got + header, ref + nr - (nl - header), nl - header) == 0,
           "a fresh log: the header, then the rows after the checkpoint");
    free(ref);
    free(got);
}

/* A finished run's checkpoint goes on to more epochs as if they had been asked for at
 * first; not to fewer, and not with other batches. */
static void test_resume_longer(void)
{
    NnlrtModel m = tm_model(8);
    NnlrtTrainConfig cfg = base_config();
    cfg.epochs = 5;
    if (!reference(&m, cfg, &val_set))
        return;
    remove_run_files();
    NnlrtTrainConfig run = run_config(cfg);
    run.epochs = 3;
    EXPECT(nnlrt_train(&m, &run, &train_set, &val_set) == 0, "3 epochs: %s", check_message);
    EXPECT(ckpt_step(run.checkpoint_path) == 15, "final checkpoint at step 15");
    run.epochs = 5;
    EXPECT(resume(&m, run, &val_set) == 0, "to 5 epochs: %s", check_message);
    expect_reference("3 epochs, then resumed to 5");

    run.epochs = 4;
    EXPECT(resume(&m, run, &val_set) == NNLRT_EUSER, "fewer epochs refused");
    EXPECT_MESSAGE(run.checkpoint_path,
                   ": error: was written at the end of epoch 5, beyond the 4 epochs of this run");
    run.epochs = 5;
    run.batch = 16;
    EXPECT(resume(&m, run, &val_set) == NNLRT_EUSER, "another batch refused");
    EXPECT_MESSAGE(run.checkpoint_path,
                   ": error: was written by a run with batches of 8 out of 37 training "
                   "samples, shuffled; this run has batches of 16 out of 37, shuffled: resume "
                   "with the same data, batch and shuffle");
}

/* Diverging in the first step after a resume: the same message, with the last finite
 * loss from before the stop. */
static void test_resume_diverged(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = base_config();
    toy.nan_at = 12;
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == NNLRT_EDIVERGED, "diverges");
    char want[1024];
    snprintf(want, sizeof want, "%s", check_message);
    EXPECT(strstr(want, "at epoch 3, step 12 (last finite loss "), "message '%s'", want);
    m = tm_model(4);
    remove_run_files();
    NnlrtTrainConfig run = run_config(cfg);
    stop_at(&m, run, NULL, 11);
    toy.nan_at = 1;
    toy.grad_calls = 0;
    EXPECT(resume(&m, run, NULL) == NNLRT_EDIVERGED, "diverges after the resume");
    EXPECT_MESSAGE(NULL, want);
    EXPECT(ckpt_step(run.checkpoint_path) == 11, "the last checkpoint is the finite one");
}

static void test_resume(void)
{
    test_resume_diverged();
    for (int elem = 4; elem <= 8; elem += 4)
        for (int64_t log_every = 0; log_every <= 2; log_every += 2) {
            test_resume_every_step(elem, log_every, &val_set);
            test_resume_every_step(elem, log_every, NULL);
        }
    test_resume_chained();
    test_resume_log();
    test_resume_longer();
}

/* ---- (b) truncations and bit flips: each refused with a message, never loaded ---- */

/* A checkpoint written after step 7 (mid-epoch), and its bytes. */
static uint8_t *good_checkpoint(const NnlrtModel *m, size_t *n)
{
    remove_run_files();
    NnlrtTrainConfig run = run_config(base_config());
    run.log_path = NULL;
    run.options = tm_options;
    run.n_options = 4;
    stop_at(m, run, NULL, 7);
    return slurp(run.checkpoint_path, n);
}

/* The damaged checkpoint is refused (exit code 1, a message for it, no parameters) by a
 * resumed run and by nnlrt_checkpoint_verify, with the same message. */
static bool refused(const NnlrtModel *m, const uint8_t *data, size_t n)
{
    const char *bad = check_tmp_path("bad");
    check_write_file(bad, data, n);
    remove(check_tmp_path("run.params"));
    NnlrtTrainConfig run = run_config(base_config());
    run.log_path = NULL;
    run.checkpoint_path = NULL;
    run.resume_path = bad;
    check_clear();
    int rc = nnlrt_train(m, &run, &train_set, NULL);
    char first[2048];
    snprintf(first, sizeof first, "%s", check_message);
    check_clear();
    int vrc = nnlrt_checkpoint_verify(m, bad);
    bool ok = rc == NNLRT_EUSER && vrc == NNLRT_EUSER && !exists(run.dump_path) &&
              strcmp(first, check_message) == 0 && strncmp(check_message, bad, strlen(bad)) == 0 &&
              strncmp(check_message + strlen(bad), ": error: ", 9) == 0;
    EXPECT(ok, "refused: rc %d, verify %d, '%s' / '%s'", rc, vrc, first, check_message);
    return ok;
}

static void test_truncate(void)
{
    NnlrtModel m = tm_model(4);
    size_t n;
    uint8_t *data = good_checkpoint(&m, &n);
    EXPECT(data && n == NNLRT_CKPT_HEADER + 8 * 2 + TM_TABLE + TM_OPTIONS + 4 * 3 * 2 + 4,
           "checkpoint of %zu bytes", n);
    if (!data)
        return;
    EXPECT(nnlrt_checkpoint_verify(&m, check_tmp_path("ck")) == 0, "verifies: %s", check_message);
    int wrong = 0;
    for (size_t k = 0; k < n; k++) {
        if (!refused(&m, data, k))
            continue;
        char want[256];
        if (k < NNLRT_CKPT_HEADER)
            snprintf(want, sizeof want, ": error: truncated at byte %zu (the header alone is "
                     "168 bytes)", k);
        else
            snprintf(want, sizeof want, ": error: truncated at byte %zu (the header promises "
                     "%zu bytes)", k, n);
        wrong += !ends_with(check_message, want);
        if (!ends_with(check_message, want) && wrong < 4)
            EXPECT(false, "truncated at %zu: '%s'", k, check_message);
    }
    EXPECT(wrong == 0, "%d truncations with another message", wrong);

    uint8_t *longer = malloc(n + 3);
    memcpy(longer, data, n);
    memset(longer + n, 0, 3);
    if (refused(&m, longer, n + 3)) {
        char want[256];
        snprintf(want, sizeof want, ": error: 3 bytes of unexpected data after byte %zu, where "
                 "the header says the checkpoint ends", n);
        EXPECT(ends_with(check_message, want), "'%s'", check_message);
    }
    check_write_file(check_tmp_path("text"), "epoch,step,loss\n1,5,0.5\n", 24);
    EXPECT(nnlrt_checkpoint_verify(&m, check_tmp_path("text")) == NNLRT_EUSER, "a text file");
    EXPECT_MESSAGE(check_tmp_path("text"),
                   ": error: not an nnlc checkpoint (it does not start with \"NNLCKPT\")");
    EXPECT(nnlrt_checkpoint_verify(&m, check_tmp_path("missing")) == NNLRT_EIO, "missing");
    EXPECT_MESSAGE(check_tmp_path("missing"),
                   ": error: cannot open the checkpoint: No such file or directory");
    EXPECT(nnlrt_checkpoint_verify(&m, check_tmp_dir()) == NNLRT_EUSER, "a directory");
    EXPECT_MESSAGE(check_tmp_dir(), ": error: not a checkpoint: not a regular file");
    free(longer);
    free(data);
}

/* What a flip of bit `bit` must be reported as. */
static const char *flip_message(size_t bit, size_t n)
{
    size_t at = bit / 8;
    if (at < 8)
        return "not an nnlc checkpoint";
    if (bit == 64) /* version 3 becomes 2: another layout, another size */
        return "|sizes";
    if (at < 12)
        return "checkpoint format version";
    if ((at >= 12 && at < 16) || (at >= 24 && at < 40) || (at >= 152 && at < 168))
        return "|sizes"; /* a size field: out of range, truncated or too long */
    (void)n;
    return "corrupt: CRC mismatch";
}

static bool size_message(const char *msg, size_t n)
{
    char truncated[128];
    snprintf(truncated, sizeof truncated, ": error: truncated at byte %zu (the header promises", n);
    return strstr(msg, "corrupt: the header's sizes are out of range") ||
           strstr(msg, truncated) ||
           strstr(msg, "bytes of unexpected data after byte");
}

static void test_bitflip(void)
{
    NnlrtModel m = tm_model(4);
    size_t n;
    uint8_t *data = good_checkpoint(&m, &n);
    if (!data)
        return;
    int wrong = 0;
    for (size_t bit = 0; bit < 8 * n; bit++) {
        data[bit / 8] ^= (uint8_t)(1u << bit % 8);
        if (refused(&m, data, n)) {
            const char *want = flip_message(bit, n);
            bool ok = want[0] == '|' ? size_message(check_message, n)
                                     : strstr(check_message, want) != NULL;
            if (!ok && wrong++ < 4)
                EXPECT(false, "bit %zu flipped: '%s'", bit, check_message);
        }
        data[bit / 8] ^= (uint8_t)(1u << bit % 8);
    }
    EXPECT(wrong == 0, "%d single flips with another message", wrong);

    /* 300 random damages of 2 to 9 bits anywhere */
    NnlrtRng rng;
    nnlrt_rng_seed(&rng, 42);
    int accepted = 0;
    for (int trial = 0; trial < 300; trial++) {
        uint8_t *copy = malloc(n);
        memcpy(copy, data, n);
        int bits = 2 + (int)nnlrt_rand_below(&rng, 8);
        for (int b = 0; b < bits; b++) {
            uint64_t at = nnlrt_rand_below(&rng, 8 * n);
            copy[at / 8] ^= (uint8_t)(1u << at % 8);
        }
        if (memcmp(copy, data, n) != 0)
            accepted += !refused(&m, copy, n);
        free(copy);
    }
    EXPECT(accepted == 0, "%d of 300 damaged checkpoints not refused", accepted);
    free(data);
}

/* ---- (c) another model's checkpoint ---- */

static void expect_other_model(const NnlrtModel *m, const char *tail)
{
    NnlrtTrainConfig run = run_config(base_config());
    run.log_path = NULL;
    run.checkpoint_path = NULL;
    run.resume_path = check_tmp_path("ck");
    remove(run.dump_path);
    check_clear();
    EXPECT(nnlrt_train(m, &run, &train_set, NULL) == NNLRT_EUSER, "other model refused");
    EXPECT(!exists(run.dump_path), "not loaded");
    char want[512];
    snprintf(want, sizeof want, ": error: belongs to another model: %s", tail);
    EXPECT_MESSAGE(run.resume_path, want);
}

static void test_model(void)
{
    NnlrtModel m = tm_model(4);
    /* pinned: a change of the hash makes every checkpoint already written unreadable */
    EXPECT(nnlrt_model_signature(&m) == 0xa392a726f1806588u, "signature %016llx",
           (unsigned long long)nnlrt_model_signature(&m));
    free(good_checkpoint(&m, &(size_t){0}));

    NnlrtModel other = tm_model(8);
    expect_other_model(&other, "its parameters are float32, this model's are float64");
    toy.elem = 4;
    other = m;
    static const NnlrtTensor wider[] = {{"lin.W", 2, {3, 1}, 0, 3, false}, {"lin.b", 1, {1}, 3, 1, false}};
    other.tensors = wider;
    other.n_params = 4;
    expect_other_model(&other, "it has 3 parameters, this model 4");
    other = m;
    other.n_states = 2;
    expect_other_model(&other, "it has 1 optimizer state, this model 2");
    other = m;
    static const NnlrtTensor renamed[] = {{"lin.w", 2, {2, 1}, 0, 2, false}, {"lin.b", 1, {1}, 2, 1, false}};
    other.tensors = renamed;
    char want[256];
    snprintf(want, sizeof want, "the names or shapes of its tensors differ (signature %016llx, "
             "this model's %016llx)", (unsigned long long)nnlrt_model_signature(&m),
             (unsigned long long)nnlrt_model_signature(&other));
    expect_other_model(&other, want);
    static const NnlrtTensor reshaped[] = {{"lin.W", 2, {1, 2}, 0, 2, false}, {"lin.b", 1, {1}, 2, 1, false}};
    other.tensors = reshaped;
    EXPECT(nnlrt_model_signature(&other) != nnlrt_model_signature(&m), "shape in signature");
    other = m;
    other.n_metrics = 2;
    expect_other_model(&other, "it was trained with 1 metric, this model has 2");
}

/* ---- (c') the tensor table, and reading without a model ---- */

/* Where the table starts in tm_model's checkpoints (two sums). */
enum { TM_TABLE_AT = NNLRT_CKPT_HEADER + 8 * 2 };

static void le_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Appends a table entry at buf + *len. */
static void table_entry(uint8_t *buf, size_t *len, const char *name, size_t name_len, int rank,
                        const int64_t *dims, int64_t offset, int64_t size)
{
    le_put(buf + *len, name_len, 4);
    memcpy(buf + *len + 4, name, name_len);
    *len += 4 + name_len;
    le_put(buf + *len, (uint64_t)rank, 4);
    *len += 4;
    for (int d = 0; d < rank; d++, *len += 8)
        le_put(buf + *len, (uint64_t)dims[d], 8);
    le_put(buf + *len, (uint64_t)offset, 8);
    le_put(buf + *len + 8, (uint64_t)size, 8);
    *len += 16;
}

/* `good` (a checkpoint of tm_model) with its table replaced by the `tn` bytes at table,
 * table_bytes and the CRC made to agree: a file that only the table's checks can refuse. */
static uint8_t *with_table(const uint8_t *good, size_t n, const uint8_t *table, size_t tn,
                           size_t *out_n)
{
    size_t rest = n - TM_TABLE_AT - TM_TABLE; /* the arenas and the CRC */
    *out_n = TM_TABLE_AT + tn + rest;
    uint8_t *f = malloc(*out_n);
    memcpy(f, good, TM_TABLE_AT);
    le_put(f + 152, tn, 8);
    memcpy(f + TM_TABLE_AT, table, tn);
    memcpy(f + TM_TABLE_AT + tn, good + TM_TABLE_AT + TM_TABLE, rest);
    uLong crc = crc32(crc32(0, Z_NULL, 0), f, (uInt)(*out_n - 4));
    le_put(f + *out_n - 4, crc, 4);
    return f;
}

/* A table of tm_model's two tensors, with the changes the cases below ask for. */
typedef struct {
    const char *what;       /* the message's tail, NULL: well-formed */
    const char *w_name;     /* lin.W's name */
    size_t w_len;
    int w_rank;
    int64_t w_dims[5], w_offset, w_size;
    const char *b_name;
    int64_t b_offset;
    uint32_t count;
    bool trailing;          /* a byte after the last entry */
} TableCase;

static uint8_t *case_table(const TableCase *c, size_t *tn)
{
    static uint8_t buf[512];
    *tn = 4;
    le_put(buf, c->count, 4);
    table_entry(buf, tn, c->w_name, c->w_len, c->w_rank, c->w_dims, c->w_offset, c->w_size);
    table_entry(buf, tn, c->b_name, strlen(c->b_name), 1, (const int64_t[]){1}, c->b_offset, 1);
    if (c->trailing)
        buf[(*tn)++] = 0;
    return buf;
}

static void expect_table_refused(const uint8_t *file, size_t n, const char *what)
{
    const char *bad = check_tmp_path("table");
    check_write_file(bad, file, n);
    NnlrtModel m = tm_model(4);
    check_clear();
    EXPECT(nnlrt_checkpoint_verify(&m, bad) == NNLRT_EUSER, "%s: verify refuses", what);
    char first[2048];
    snprintf(first, sizeof first, "%s", check_message);
    NnlrtCheckpointTensors t;
    check_clear();
    EXPECT(nnlrt_checkpoint_read_tensors(bad, &t) == NNLRT_EUSER && t.tensors == NULL &&
           t.params == NULL, "%s: read_tensors refuses", what);
    char want[512];
    snprintf(want, sizeof want, ": error: corrupt: its tensor table%s", what);
    EXPECT(ends_with(check_message, want) && strcmp(first, check_message) == 0,
           "'%s' / '%s', not '%s'", first, check_message, want);
}

static void test_table_malformed(const uint8_t *good, size_t n)
{
    const TableCase ok = {NULL, "lin.W", 5, 2, {2, 1}, 0, 2, "lin.b", 2, 2, false};
    TableCase cases[13];
    for (int i = 0; i < 13; i++)
        cases[i] = ok;
    cases[0].what = "'s entry 0 has a size that is not the product of its dimensions";
    cases[0].w_size = 3;
    cases[1].what = "'s entry 1 lies outside the parameter arena";
    cases[1].b_offset = 3;
    cases[2].what = "'s entry 1 overlaps another tensor in the arena";
    cases[2].b_offset = 1;
    cases[3].what = "'s entry 0 has an empty name";
    cases[3].w_len = 0;
    cases[4].what = "'s entry 1 has the name of another tensor";
    cases[4].b_name = "lin.W";
    cases[5].what = "'s entry 0 has a rank above 4";
    cases[5].w_rank = 5;
    cases[5].w_dims[2] = cases[5].w_dims[3] = cases[5].w_dims[4] = 1;
    cases[6].what = " has bytes after its last entry";
    cases[6].trailing = true;
    cases[7].what = " counts more tensors than it has room for";
    cases[7].count = 1000;
    cases[8].what = "'s entry 0 has a name that is not UTF-8 (or holds a NUL)";
    cases[8].w_name = "lin\0W";
    cases[9].what = "'s entry 0 has a dimension out of range";
    cases[9].w_dims[1] = 0;
    cases[10].what = "'s entry 0 lies outside the parameter arena";
    cases[10].w_offset = -1;
    cases[11].what = "'s entry 1 runs past the table's end";
    cases[11].count = 2;
    cases[12].what = "'s entry 0 has a name that is not UTF-8 (or holds a NUL)";
    cases[12].w_name = "lin\xC0W";
    for (int i = 0; i < 13; i++) {
        size_t tn, fn;
        const uint8_t *table = case_table(&cases[i], &tn);
        if (i == 11)
            tn -= 10; /* the second entry is cut */
        uint8_t *f = with_table(good, n, table, tn, &fn);
        expect_table_refused(f, fn, cases[i].what);
        free(f);
    }
}

/* A well-formed table that is not the model's: the model's reader calls it corrupt, the
 * reader without a model takes it. */
static void test_table_disagrees(const uint8_t *good, size_t n)
{
    const TableCase renamed = {NULL, "lin.X", 5, 2, {2, 1}, 0, 2, "lin.b", 2, 2, false};
    size_t tn, fn;
    const uint8_t *table0 = case_table(&renamed, &tn);
    uint8_t *f = with_table(good, n, table0, tn, &fn);
    const char *path = check_tmp_path("table");
    check_write_file(path, f, fn);
    NnlrtModel m = tm_model(4);
    check_clear();
    EXPECT(nnlrt_checkpoint_verify(&m, path) == NNLRT_EUSER, "a table of another model");
    EXPECT_MESSAGE(path, ": error: corrupt: its tensor table disagrees with its model signature");
    NnlrtCheckpointTensors t;
    EXPECT(nnlrt_checkpoint_read_tensors(path, &t) == 0 && t.n_tensors == 2 &&
           strcmp(t.tensors[0].name, "lin.X") == 0, "read without a model: %s", check_message);
    nnlrt_checkpoint_tensors_free(&t);
    free(f);

    /* a scalar (rank 0, size 1), as `param s = 1` makes one */
    uint8_t table[256];
    size_t len = 4;
    le_put(table, 3, 4);
    table_entry(table, &len, "lin.W", 5, 1, (const int64_t[]){1}, 0, 1);
    table_entry(table, &len, "s", 1, 0, NULL, 1, 1);
    table_entry(table, &len, "lin.b", 5, 1, (const int64_t[]){1}, 2, 1);
    f = with_table(good, n, table, len, &fn);
    check_write_file(path, f, fn);
    EXPECT(nnlrt_checkpoint_read_tensors(path, &t) == 0 && t.n_tensors == 3 &&
           t.tensors[1].rank == 0 && t.tensors[1].size == 1, "a scalar: %s", check_message);
    nnlrt_checkpoint_tensors_free(&t);
    free(f);
}

/* What nnlrt_checkpoint_read_tensors returns for a good checkpoint, in both element types. */
static void test_table_read(int elem)
{
    NnlrtModel m = tm_model(elem);
    NnlrtTrainConfig cfg = base_config();
    cfg.log_path = NULL;
    cfg.checkpoint_path = check_tmp_path("ck");
    cfg.options = tm_options;
    cfg.n_options = 4;
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "run: %s", check_message);
    size_t n;
    uint8_t *data = slurp(cfg.checkpoint_path, &n);
    NnlrtCheckpointTensors t;
    EXPECT(nnlrt_checkpoint_read_tensors(cfg.checkpoint_path, &t) == 0, "read: %s", check_message);
    EXPECT(t.elem_size == elem && t.n_params == 3 && t.n_states == 1 && t.epoch == 3 &&
           t.step == 15 && t.n_tensors == 2, "elem %d: %d %lld %d %lld %lld %d", elem,
           t.elem_size, (long long)t.n_params, t.n_states, (long long)t.epoch,
           (long long)t.step, t.n_tensors);
    for (int i = 0; i < t.n_tensors && i < 2; i++) {
        const NnlrtTensor *a = &t.tensors[i], *b = &toy.tensors[i];
        EXPECT(strcmp(a->name, b->name) == 0 && a->rank == b->rank && a->dims[0] == b->dims[0] &&
               (a->rank < 2 || a->dims[1] == b->dims[1]) && a->offset == b->offset &&
               a->size == b->size, "tensor %d: %s", i, a->name);
    }
    /* the arena as it is in the file (this test runs on little-endian machines) */
    EXPECT(data && t.params &&
           memcmp(t.params, data + TM_TABLE_AT + TM_TABLE + TM_OPTIONS, 3 * (size_t)elem) == 0,
           "the parameter arena");
    EXPECT(t.n_options == 4, "%d options", t.n_options);
    for (int i = 0; i < t.n_options && i < 4; i++)
        EXPECT(strcmp(t.options[i], tm_options[i]) == 0, "option %d: '%s'", i, t.options[i]);
    nnlrt_checkpoint_tensors_free(&t);
    EXPECT(nnlrt_checkpoint_read_options(cfg.checkpoint_path, &t) == 0 && !t.params &&
           t.n_tensors == 2 && t.n_options == 4 && strcmp(t.options[3], "fit csv") == 0,
           "read_options: %s", check_message);
    nnlrt_checkpoint_tensors_free(&t);
    free(data);
}

static void test_table(void)
{
    test_table_read(4);
    test_table_read(8);
    NnlrtModel m = tm_model(4);
    size_t n;
    uint8_t *data = good_checkpoint(&m, &n);
    if (!data)
        return;
    /* the table as written: the model's tensors */
    uint8_t want[TM_TABLE];
    size_t len = 4;
    le_put(want, 2, 4);
    table_entry(want, &len, "lin.W", 5, 2, (const int64_t[]){2, 1}, 0, 2);
    table_entry(want, &len, "lin.b", 5, 1, (const int64_t[]){1}, 2, 1);
    EXPECT(len == TM_TABLE && memcmp(data + TM_TABLE_AT, want, TM_TABLE) == 0 &&
           data[152] == TM_TABLE, "the table's bytes");
    test_table_malformed(data, n);
    test_table_disagrees(data, n);

    /* every truncation and every single bit flip: refused without a model too, with the
     * message the model's reader gives (a flip is a size or the CRC, before the model) */
    const char *bad = check_tmp_path("bad");
    int wrong = 0;
    for (size_t k = 0; k < 8 * n + n; k++) {
        size_t len2 = k < n ? k : n;
        if (k >= n)
            data[(k - n) / 8] ^= (uint8_t)(1u << (k - n) % 8);
        check_write_file(bad, data, len2);
        check_clear();
        int vrc = nnlrt_checkpoint_verify(&m, bad);
        char first[2048];
        snprintf(first, sizeof first, "%s", check_message);
        NnlrtCheckpointTensors t;
        check_clear();
        int rc = nnlrt_checkpoint_read_tensors(bad, &t);
        bool ok = rc == NNLRT_EUSER && vrc == NNLRT_EUSER && strcmp(first, check_message) == 0;
        if (rc == 0)
            nnlrt_checkpoint_tensors_free(&t);
        if (!ok && wrong++ < 4)
            EXPECT(false, "case %zu: %d '%s' / %d '%s'", k, vrc, first, rc, check_message);
        if (k >= n)
            data[(k - n) / 8] ^= (uint8_t)(1u << (k - n) % 8);
    }
    EXPECT(wrong == 0, "%d damaged files read without a model differently", wrong);
    free(data);
}

/* ---- (c'') the run's options ---- */

/* Where the options start in tm_model's checkpoints. */
enum { TM_OPTIONS_AT = TM_TABLE_AT + TM_TABLE };

/* `good` (a checkpoint of tm_model with tm_options) with its options replaced by the `on`
 * bytes at opts, options_bytes and the CRC made to agree. */
static uint8_t *with_options(const uint8_t *good, size_t n, const uint8_t *opts, size_t on,
                             size_t *out_n)
{
    size_t rest = n - TM_OPTIONS_AT - TM_OPTIONS; /* the arenas and the CRC */
    *out_n = TM_OPTIONS_AT + on + rest;
    uint8_t *f = malloc(*out_n);
    memcpy(f, good, TM_OPTIONS_AT);
    le_put(f + 160, on, 8);
    memcpy(f + TM_OPTIONS_AT, opts, on);
    memcpy(f + TM_OPTIONS_AT + on, good + TM_OPTIONS_AT + TM_OPTIONS, rest);
    uLong crc = crc32(crc32(0, Z_NULL, 0), f, (uInt)(*out_n - 4));
    le_put(f + *out_n - 4, crc, 4);
    return f;
}

/* Refused with the same message by verify, a resume, and both readers without a model. */
static void expect_options_refused(const uint8_t *file, size_t n, const char *what)
{
    const char *bad = check_tmp_path("opts");
    check_write_file(bad, file, n);
    NnlrtModel m = tm_model(4);
    char want[512], msgs[4][1024];
    snprintf(want, sizeof want, ": error: corrupt: its record of the run's options%s", what);
    check_clear();
    int rc[4];
    rc[0] = nnlrt_checkpoint_verify(&m, bad);
    snprintf(msgs[0], sizeof msgs[0], "%s", check_message);
    NnlrtTrainConfig run = run_config(base_config());
    run.log_path = run.checkpoint_path = NULL;
    run.resume_path = bad;
    remove(run.dump_path);
    check_clear();
    rc[1] = nnlrt_train(&m, &run, &train_set, NULL);
    snprintf(msgs[1], sizeof msgs[1], "%s", check_message);
    NnlrtCheckpointTensors t;
    check_clear();
    rc[2] = nnlrt_checkpoint_read_tensors(bad, &t);
    snprintf(msgs[2], sizeof msgs[2], "%s", check_message);
    check_clear();
    rc[3] = nnlrt_checkpoint_read_options(bad, &t);
    snprintf(msgs[3], sizeof msgs[3], "%s", check_message);
    for (int i = 0; i < 4; i++)
        EXPECT(rc[i] == NNLRT_EUSER && ends_with(msgs[i], want), "reader %d: %d '%s', not '%s'",
               i, rc[i], msgs[i], want);
    EXPECT(!exists(run.dump_path) && t.options == NULL && t.tensors == NULL, "nothing read");
}

/* Appends an option (u32 len, the bytes) at buf + *len. */
static void option_entry(uint8_t *buf, size_t *len, const char *text, size_t n)
{
    le_put(buf + *len, n, 4);
    memcpy(buf + *len + 4, text, n);
    *len += 4 + n;
}

/* The version 2 form of `v3` (a checkpoint of tm_model): no options_bytes, no options. */
static uint8_t *as_version2(const uint8_t *v3, size_t n, size_t on, size_t *out_n)
{
    size_t body = n - NNLRT_CKPT_HEADER - on - 4; /* sums, table, arenas */
    size_t table_end = TM_OPTIONS_AT - NNLRT_CKPT_HEADER;
    *out_n = 160 + body + 4;
    uint8_t *f = malloc(*out_n);
    memcpy(f, v3, 160);
    le_put(f + 8, 2, 4);
    memcpy(f + 160, v3 + NNLRT_CKPT_HEADER, table_end);
    memcpy(f + 160 + table_end, v3 + TM_OPTIONS_AT + on, body - table_end);
    uLong crc = crc32(crc32(0, Z_NULL, 0), f, (uInt)(*out_n - 4));
    le_put(f + *out_n - 4, crc, 4);
    return f;
}

static void test_options(void)
{
    NnlrtModel m = tm_model(4);
    size_t n;
    uint8_t *good = good_checkpoint(&m, &n);
    if (!good)
        return;
    /* as written */
    uint8_t want[TM_OPTIONS];
    size_t len = 4;
    le_put(want, 4, 4);
    for (int i = 0; i < 4; i++)
        option_entry(want, &len, tm_options[i], strlen(tm_options[i]));
    EXPECT(len == TM_OPTIONS && memcmp(good + TM_OPTIONS_AT, want, TM_OPTIONS) == 0 &&
           good[160] == TM_OPTIONS, "the options' bytes");

    /* malformed, with a CRC that agrees */
    uint8_t buf[64];
    size_t bn, fn;
    struct {
        const char *what;
        int count;          /* the count written */
        const char *opt[2]; /* the options written, with their lengths */
        size_t len[2];
        size_t claim;       /* the second option's length as written (0: its own) */
        bool trailing;
    } cases[] = {
        {" counts more options than it has room for", 9, {"--set"}, {5}, 0, false},
        {": option 2 runs past the record's end", 2, {"--log", "x.csv"}, {5, 5}, 40, false},
        {": option 1 holds a NUL byte", 1, {"--l\0g"}, {5}, 0, false},
        {" has bytes after its last option", 1, {"--float64"}, {9}, 0, true},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        bn = 4;
        le_put(buf, (uint64_t)cases[c].count, 4);
        for (int i = 0; i < 2 && cases[c].opt[i]; i++)
            option_entry(buf, &bn, cases[c].opt[i], cases[c].len[i]);
        if (cases[c].claim)
            le_put(buf + 4 + 4 + cases[c].len[0], cases[c].claim, 4);
        if (cases[c].trailing)
            buf[bn++] = 'x';
        uint8_t *f = with_options(good, n, buf, bn, &fn);
        expect_options_refused(f, fn, cases[c].what);
        free(f);
    }

    /* none: the record of a run without options is its count alone */
    le_put(buf, 0, 4);
    uint8_t *f = with_options(good, n, buf, 4, &fn);
    const char *path = check_tmp_path("opts");
    check_write_file(path, f, fn);
    NnlrtCheckpointTensors t;
    EXPECT(nnlrt_checkpoint_verify(&m, path) == 0 && nnlrt_checkpoint_read_options(path, &t) == 0 &&
           t.n_options == 0 && t.options == NULL, "no options: %s", check_message);
    nnlrt_checkpoint_tensors_free(&t);
    free(f);
    free(good);

    /* too many to record: refused before the first step */
    char *huge = malloc(NNLRT_CKPT_MAX_OPTIONS);
    memset(huge, 'x', NNLRT_CKPT_MAX_OPTIONS - 1);
    huge[NNLRT_CKPT_MAX_OPTIONS - 1] = 0;
    const char *too_long[] = {"--set", huge};
    remove_run_files();
    NnlrtTrainConfig run = run_config(base_config());
    run.options = too_long;
    run.n_options = 2;
    check_clear();
    EXPECT(nnlrt_train(&m, &run, &train_set, NULL) == NNLRT_EUSER && !exists(run.checkpoint_path) &&
           !exists(run.log_path), "too long: not run");
    EXPECT_MESSAGE("nnlc", ": error: the run's options are too long to be recorded in its "
                   "checkpoints (1 MiB at most)");
    run.n_options = 1; /* just below the limit is fine: 4 + 9 + (4 + 5) */
    EXPECT(nnlrt_checkpoint_options_fit(too_long, 1), "one option fits");
    free(huge);

    /* a checkpoint of format version 2 (no options) resumes bit-exactly; a run that does
     * not resume sees it as its model's */
    NnlrtTrainConfig cfg = base_config();
    if (!reference(&m, cfg, &val_set))
        return;
    remove_run_files();
    run = run_config(cfg);
    if (!stop_at(&m, run, &val_set, 6))
        return;
    uint8_t *v3 = slurp(run.checkpoint_path, &n);
    uint8_t *v2 = as_version2(v3, n, 4, &fn);
    check_write_file(run.checkpoint_path, v2, fn);
    EXPECT(nnlrt_checkpoint_verify(&m, run.checkpoint_path) == 0, "version 2: %s", check_message);
    EXPECT(nnlrt_checkpoint_read_options(run.checkpoint_path, &t) == 0 && t.n_options == 0 &&
           t.step == 6, "version 2 read without a model: %s", check_message);
    nnlrt_checkpoint_tensors_free(&t);
    int64_t step = 0;
    EXPECT(nnlrt_checkpoint_found(run.checkpoint_path, &m, &step) == NNLRT_FOUND_THIS_MODEL &&
           step == 6, "version 2 found as this model's");
    EXPECT(resume(&m, run, &val_set) == 0, "version 2 resumed: %s", check_message);
    expect_reference("resumed from a version 2 checkpoint");
    uint8_t *after = slurp(run.checkpoint_path, &n);
    EXPECT(after && after[8] == NNLRT_CKPT_VERSION, "its run writes version 3");
    free(after);
    free(v3);
    free(v2);
}

/* ---- (d) failures while writing: the previous checkpoint stays, no temp file ---- */

/* A run that checkpoints after every step into dir/ck (which holds `previous`, or
 * nothing), failing at `step`: exit code 2 and the message; the checkpoint unchanged. */
static void expect_failed_write(const char *dir, NnlrtCkptStep step, int64_t keep,
                                const char *tail)
{
    char ck[1200], prev[1200];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    snprintf(prev, sizeof prev, "%s/previous", check_tmp_dir());
    bool had = exists(ck);
    if (had)
        copy_file(ck, prev);
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = base_config();
    cfg.checkpoint_path = ck;
    cfg.checkpoint_every_steps = 1;
    cfg.keep = keep;
    nnlrt_checkpoint_fail_at(step, step == NNLRT_CKPT_FSYNC ? EIO : ENOSPC);
    check_clear();
    int rc = nnlrt_train(&m, &cfg, &train_set, NULL);
    nnlrt_checkpoint_fail_at(NNLRT_CKPT_NONE, 0);
    EXPECT(rc == NNLRT_EIO, "step %d: exit code %d", (int)step, rc);
    EXPECT_MESSAGE(ck, tail);
    EXPECT(had ? check_same_file(ck, prev) : !exists(ck), "step %d: previous checkpoint",
           (int)step);
    EXPECT(count_tmp(dir) == 0, "step %d: a temp file left", (int)step);
}

static void test_failure_injected(void)
{
    const char *dir = check_tmp_path("fail");
    mkdir(dir, 0777);
    char ck[1200];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    expect_failed_write(dir, NNLRT_CKPT_WRITE, 1, ": error: cannot write the checkpoint: No "
                        "space left on device (write); no checkpoint was written");
    /* a good checkpoint, at the end of a run */
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = base_config();
    cfg.checkpoint_path = ck;
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "good run: %s", check_message);
    static const struct {
        NnlrtCkptStep step;
        const char *what;
    } steps[] = {
        {NNLRT_CKPT_OPEN, "No space left on device (creating the temporary file)"},
        {NNLRT_CKPT_WRITE, "No space left on device (write)"},
        {NNLRT_CKPT_FLUSH, "No space left on device (fflush)"},
        {NNLRT_CKPT_FSYNC, "Input/output error (fsync)"},
        {NNLRT_CKPT_CLOSE, "No space left on device (fclose)"},
        {NNLRT_CKPT_ROTATE, "No space left on device (rotating the older checkpoints)"},
        {NNLRT_CKPT_RENAME, "No space left on device (renaming over the checkpoint)"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        for (int64_t keep = 1; keep <= 3; keep++) {
            if (steps[i].step == NNLRT_CKPT_ROTATE && keep == 1)
                continue; /* nothing rotates */
            char tail[256];
            snprintf(tail, sizeof tail, ": error: cannot write the checkpoint: %s; the previous "
                     "checkpoint is unchanged", steps[i].what);
            expect_failed_write(dir, steps[i].step, keep, tail);
        }
    EXPECT(nnlrt_checkpoint_verify(&m, ck) == 0, "still verifies: %s", check_message);

    /* the directory cannot be synced: the new checkpoint is in place, and said to be */
    cfg.checkpoint_every_steps = 1;
    nnlrt_checkpoint_fail_at(NNLRT_CKPT_DIRSYNC, EIO);
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == NNLRT_EIO, "directory sync fails");
    nnlrt_checkpoint_fail_at(NNLRT_CKPT_NONE, 0);
    EXPECT_MESSAGE(ck, ": error: the checkpoint was written, but its directory cannot be "
                       "synced: Input/output error (fsync of the directory); it may not "
                       "survive a power loss");
    EXPECT(ckpt_step(ck) == 1 && nnlrt_checkpoint_verify(&m, ck) == 0, "the new one");
    EXPECT(count_tmp(dir) == 0, "no temp file");
}

/* A real failure: a file size limit (RLIMIT_FSIZE) in a child, so that write() says
 * EFBIG partway through the checkpoint. */
static void test_failure_fsize(void)
{
    const char *dir = check_tmp_path("fsize");
    mkdir(dir, 0777);
    char ck[1200], msg[1200];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    snprintf(msg, sizeof msg, "%s/message", check_tmp_dir());
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = base_config();
    cfg.checkpoint_path = ck;
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "good run: %s", check_message);
    copy_file(ck, check_tmp_path("previous"));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *out = fopen(msg, "w");
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl;
        getrlimit(RLIMIT_FSIZE, &rl);
        rlim_t soft = rl.rlim_cur;
        rl.rlim_cur = 100;
        setrlimit(RLIMIT_FSIZE, &rl);
        cfg.checkpoint_every_steps = 1;
        check_clear();
        int rc = nnlrt_train(&m, &cfg, &train_set, NULL);
        rl.rlim_cur = soft;
        setrlimit(RLIMIT_FSIZE, &rl);
        fprintf(out, "%s", check_message);
        fclose(out);
        _exit(rc);
    }
    int status = 0;
    EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid, "fork");
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == NNLRT_EIO, "child status %d", status);
    size_t n;
    char *text = (char *)slurp(msg, &n);
    char want[1400];
    snprintf(want, sizeof want, "%s: error: cannot write the checkpoint: File too large (", ck);
    EXPECT(text && strncmp(text, want, strlen(want)) == 0 &&
               ends_with(text, "); the previous checkpoint is unchanged"),
           "child's message '%s'", text ? text : "(none)");
    free(text);
    EXPECT(check_same_file(ck, check_tmp_path("previous")), "previous checkpoint unchanged");
    EXPECT(count_tmp(dir) == 0, "no temp file");
}

/* A directory that cannot be written (not for root, who can write anywhere). */
static void test_failure_readonly(void)
{
    if (geteuid() == 0) {
        fprintf(stderr, "failure: running as root, the read-only directory case is skipped\n");
        return;
    }
    const char *dir = check_tmp_path("readonly");
    mkdir(dir, 0777);
    char ck[1200];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = base_config();
    cfg.checkpoint_path = ck;
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "good run: %s", check_message);
    copy_file(ck, check_tmp_path("previous"));
    chmod(dir, 0555);
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == NNLRT_EIO, "read-only directory");
    EXPECT_MESSAGE(ck, ": error: cannot write the checkpoint: Permission denied (creating the "
                       "temporary file); the previous checkpoint is unchanged");
    chmod(dir, 0777);
    EXPECT(check_same_file(ck, check_tmp_path("previous")), "previous checkpoint unchanged");
    EXPECT(count_tmp(dir) == 0, "no temp file");
}

static void test_failure(void)
{
    test_failure_injected();
    test_failure_fsize();
    test_failure_readonly();
}

/* ---- (e) stale temp files ---- */

static void touch(const char *dir, const char *name)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    check_write_file(path, "x", 1);
}

static bool in_dir(const char *dir, const char *name)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return exists(path);
}

static void test_stale(void)
{
    const char *dir = check_tmp_path("stale");
    mkdir(dir, 0777);
    char ck[1200], mine[64], parent[64];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    snprintf(mine, sizeof mine, "ck.tmp.%ld", (long)getpid());
    snprintf(parent, sizeof parent, "ck.tmp.%ld", (long)getppid());
    const char *kept[] = {parent, "ck.tmp.abc", "ck.tmpx", "ck.tmp.", "other.tmp.999999999",
                          "ck.1.tmp.999999999", "ck"};
    touch(dir, "ck.tmp.999999999");
    touch(dir, mine);
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        touch(dir, kept[i]);
    nnlrt_checkpoint_clean_stale(ck);
    EXPECT(!in_dir(dir, "ck.tmp.999999999"), "a dead process's temp file removed");
    EXPECT(!in_dir(dir, mine), "this process's own leftover removed");
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        EXPECT(in_dir(dir, kept[i]), "%s kept", kept[i]);

    /* a run removes them at start */
    touch(dir, "ck.tmp.999999998");
    remove(ck);
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = base_config();
    cfg.epochs = 1;
    cfg.checkpoint_path = ck;
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "run: %s", check_message);
    EXPECT(!in_dir(dir, "ck.tmp.999999998"), "removed by the run");
    EXPECT(count_tmp(dir) == 5, "only the kept ones stay");

    /* a path without a directory: the current one */
    char cwd[1024];
    if (getcwd(cwd, sizeof cwd) && chdir(dir) == 0) {
        touch(".", "ck.tmp.999999997");
        nnlrt_checkpoint_clean_stale("ck");
        EXPECT(!in_dir(".", "ck.tmp.999999997"), "in the current directory");
        EXPECT(chdir(cwd) == 0, "chdir back");
    }
}

/* ---- (f) keep = K ---- */

static void test_keep(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = base_config();
    if (!reference(&m, cfg, NULL))
        return;
    const char *dir = check_tmp_path("keep");
    mkdir(dir, 0777);
    char ck[1200], name[1300];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    NnlrtTrainConfig run = cfg;
    run.checkpoint_path = ck;
    run.checkpoint_every_steps = 1;
    run.keep = 3;
    EXPECT(nnlrt_train(&m, &run, &train_set, NULL) == 0, "keep 3: %s", check_message);
    for (int i = 0; i < 3; i++) {
        if (i)
            snprintf(name, sizeof name, "%s.%d", ck, i);
        else
            snprintf(name, sizeof name, "%s", ck);
        EXPECT(ckpt_step(name) == STEPS - i, "%s holds step %lld", name,
               (long long)ckpt_step(name));
        EXPECT(nnlrt_checkpoint_verify(&m, name) == 0, "%s verifies: %s", name, check_message);
    }
    snprintf(name, sizeof name, "%s.3", ck);
    EXPECT(!exists(name), "no fourth");
    EXPECT(count_tmp(dir) == 0, "no temp file");

    /* the one before the last goes on to the same end */
    snprintf(name, sizeof name, "%s.1", ck);
    NnlrtTrainConfig again = cfg;
    again.resume_path = name;
    again.log_path = NULL;
    again.dump_path = check_tmp_path("run.params");
    EXPECT(nnlrt_train(&m, &again, &train_set, NULL) == 0, "resume from .1: %s", check_message);
    EXPECT(check_same_file(again.dump_path, check_tmp_path("ref.params")), "same parameters");

    /* every 2 epochs of 3, keep 3: after epoch 2 (step 10) and at the end (15) */
    const char *dir2 = check_tmp_path("keep2");
    mkdir(dir2, 0777);
    snprintf(ck, sizeof ck, "%s/ck", dir2);
    run.checkpoint_path = ck;
    run.checkpoint_every_steps = 0;
    run.checkpoint_every = 2;
    EXPECT(nnlrt_train(&m, &run, &train_set, NULL) == 0, "every 2 epochs: %s", check_message);
    snprintf(name, sizeof name, "%s.1", ck);
    EXPECT(ckpt_step(ck) == 15 && ckpt_step(name) == 10, "steps %lld, %lld",
           (long long)ckpt_step(ck), (long long)ckpt_step(name));
    snprintf(name, sizeof name, "%s.2", ck);
    EXPECT(!exists(name), "two checkpoints only");

    /* keep 1 (the default) leaves no .1 */
    const char *dir3 = check_tmp_path("keep1");
    mkdir(dir3, 0777);
    snprintf(ck, sizeof ck, "%s/ck", dir3);
    run.checkpoint_path = ck;
    run.keep = 0;
    EXPECT(nnlrt_train(&m, &run, &train_set, NULL) == 0, "keep 1: %s", check_message);
    snprintf(name, sizeof name, "%s.1", ck);
    EXPECT(exists(ck) && !exists(name), "one checkpoint");
}

/* ---- (g) SIGTERM and SIGINT delivered to a training child ---- */

/* A child trains (run.params, run.log, checkpoint ck unless none), tells the parent
 * during step 6's update, and is sent `sig` then. Returns the child's status; its last
 * message is left in buf. */
static int signalled_child(NnlrtTrainConfig run, int sig, char *buf, size_t size)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    const char *msg = check_tmp_path("child.message");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        tm_notify_fd = fds[1];
        tm_notify_step = 6;
        NnlrtModel m = tm_model(4);
        check_clear();
        int rc = nnlrt_train(&m, &run, &train_set, &val_set);
        check_write_file(msg, check_message, strlen(check_message));
        _exit(rc);
    }
    close(fds[1]);
    char c;
    EXPECT(pid > 0 && read(fds[0], &c, 1) == 1, "the child reached step 6");
    kill(pid, sig);
    int status = -1;
    waitpid(pid, &status, 0);
    close(fds[0]);
    size_t n = 0;
    char *text = (char *)slurp(msg, &n);
    snprintf(buf, size, "%.*s", text ? (int)n : 0, text ? text : "");
    free(text);
    return status;
}

static void test_signal(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = base_config();
    if (!reference(&m, cfg, &val_set))
        return;
    remove_run_files();
    NnlrtTrainConfig run = run_config(cfg);
    run.resume_hint = "nnlc run fit.nnl --resume";
    char msg[2048], want[2048];
    int status = signalled_child(run, SIGTERM, msg, sizeof msg);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 143, "SIGTERM: status %d", status);
    snprintf(want, sizeof want, "nnlc: error: stopped by SIGTERM after step 6 (epoch 2, batch 1 "
             "of 5); checkpoint written to %s; to resume: nnlc run fit.nnl --resume %s",
             run.checkpoint_path, run.checkpoint_path);
    EXPECT(strcmp(msg, want) == 0, "message\n  got  '%s'\n  want '%s'", msg, want);
    EXPECT(!exists(run.dump_path), "no parameters after a stop");
    EXPECT(ckpt_step(run.checkpoint_path) == 6, "checkpoint after step 6");
    EXPECT(resume(&m, run, &val_set) == 0, "resume: %s", check_message);
    expect_reference("SIGTERM after step 6, resumed");

    remove_run_files();
    status = signalled_child(run, SIGINT, msg, sizeof msg);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 130, "SIGINT: status %d", status);
    EXPECT(strstr(msg, "stopped by SIGINT after step 6 "), "message '%s'", msg);
    EXPECT(resume(&m, run, &val_set) == 0, "resume: %s", check_message);
    expect_reference("SIGINT after step 6, resumed");

    remove_run_files();
    run.checkpoint_path = NULL;
    status = signalled_child(run, SIGTERM, msg, sizeof msg);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 143, "no checkpoint: status %d", status);
    EXPECT(strcmp(msg, "nnlc: error: stopped by SIGTERM after step 6 (epoch 2, batch 1 of 5): "
                       "no checkpoint was requested, so the run cannot be resumed") == 0,
           "message '%s'", msg);

    /* the handlers are the caller's again afterwards */
    struct sigaction sa;
    EXPECT(sigaction(SIGTERM, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL, "SIGTERM restored");
    EXPECT(sigaction(SIGINT, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL, "SIGINT restored");

    /* a path that needs quoting, in the hint */
    remove_run_files();
    run = run_config(cfg);
    run.checkpoint_path = check_tmp_path("it's a ck");
    stop_at(&m, run, &val_set, 2);
    snprintf(want, sizeof want, "; to resume: --resume '%s/it'\\''s a ck'", check_tmp_dir());
    EXPECT(ends_with(check_message, want), "quoted: '%s'", check_message);
    remove(run.checkpoint_path);
}

/* kill -9 at varied moments of a run that checkpoints after every step, restarted with
 * --resume each time (docs/checkpoints.md): every restart finds a checkpoint that verifies,
 * and the run, once it gets to the end, has the parameters and log of one that was never
 * killed. The parent paces the child: each update waits for a token from the parent and
 * acknowledges it. A cycle grants 2 or 3 tokens, waits for their acknowledgements (the
 * checkpoint before the last granted step is then in place), and kills the child 0 to
 * 2 ms later, while it finishes that step, writes its checkpoint, or waits for the next
 * token; every fifth cycle grants none and kills during the start-up and the resume. The
 * timings choose where a kill lands, never whether the run makes progress: each granting
 * cycle moves the checkpoint on by 1 to 3 steps, on a loaded machine as on an idle one. */
static void test_kill(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = base_config();
    cfg.epochs = 40; /* 200 steps */
    cfg.log_every = 2;
    if (!reference(&m, cfg, &val_set))
        return;
    remove_run_files();
    NnlrtTrainConfig run = run_config(cfg);
    run.checkpoint_every_steps = 1;
    run.keep = 2;
    NnlrtRng rng;
    nnlrt_rng_seed(&rng, 5);
    int cycles = 0, killed = 0, bad = 0, status = 0;
    for (bool done = false; !done && cycles < 1000; cycles++) {
        run.resume_path = exists(run.checkpoint_path) ? run.checkpoint_path : NULL;
        int token[2], ack[2];
        if (pipe(token) != 0 || pipe(ack) != 0) {
            EXPECT(false, "pipe: %s", strerror(errno));
            return;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(token[1]);
            close(ack[0]);
            tm_token_fd = token[0];
            tm_ack_fd = ack[1];
            _exit(nnlrt_train(&m, &run, &train_set, &val_set));
        }
        close(token[0]);
        close(ack[1]);
        int grant = cycles % 5 == 4 ? 0 : 2 + (int)nnlrt_rand_below(&rng, 2);
        char c[3] = "xxx";
        bool ended = false; /* the child exited: the end of the run, or a failure */
        if (grant && write(token[1], c, (size_t)grant) != grant)
            ended = true;
        for (int got = 0; !ended && got < grant; got++)
            ended = read(ack[0], c, 1) != 1;
        long delay = (long)nnlrt_rand_below(&rng, 2000) * 1000;
        nanosleep(&(struct timespec){0, delay}, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        close(token[1]);
        close(ack[0]);
        done = WIFEXITED(status);
        killed += WIFSIGNALED(status);
        if (exists(run.checkpoint_path) && nnlrt_checkpoint_verify(&m, run.checkpoint_path) != 0 &&
            bad++ < 3)
            EXPECT(false, "cycle %d: %s", cycles, check_message);
    }
    EXPECT(bad == 0, "%d checkpoints that do not verify", bad);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the run's end: status %d", status);
    EXPECT(killed >= 60, "only %d of %d cycles killed mid-run", killed, cycles);
    expect_reference("killed with SIGKILL and resumed");
    EXPECT(count_tmp(check_tmp_dir()) <= 1, "stale temp files");
}

/* ---- two runs on the same outputs ---- */

static int lock_notify_fd = -1;

/* The holding child's update: says it is training (its locks taken), then waits for its
 * SIGKILL. */
static void lock_hold(int64_t step)
{
    (void)step;
    char c = 'x';
    if (write(lock_notify_fd, &c, 1) == 1)
        for (;;)
            pause();
    _exit(3);
}

/* A run holds its checkpoint's and its log's locks while it lasts: a second run on either
 * is refused at once (exit 1) naming the holder; once the holder is killed (the kernel
 * releases its locks; its lock files stay), the next run takes them over and removes them. */
static void test_lock(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = run_config(base_config());
    remove_run_files();
    int fds[2];
    EXPECT(pipe(fds) == 0, "pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        lock_notify_fd = fds[1];
        toy.before_update = lock_hold;
        _exit(nnlrt_train(&m, &cfg, &train_set, NULL));
    }
    close(fds[1]);
    char c;
    EXPECT(pid > 0 && read(fds[0], &c, 1) == 1, "the holder started training");
    close(fds[0]);
    char want[1400];
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == NNLRT_EUSER, "second run on ck");
    snprintf(want, sizeof want, ": error: the checkpoint is in use by another run (process %ld "
             "holds '%s.lock'): wait for it to end, or give this run another checkpoint",
             (long)pid, cfg.checkpoint_path);
    EXPECT_ONE_MESSAGE(cfg.checkpoint_path, want);
    NnlrtTrainConfig other = cfg;
    other.checkpoint_path = check_tmp_path("ck2");
    other.dump_path = check_tmp_path("run2.params");
    check_clear();
    EXPECT(nnlrt_train(&m, &other, &train_set, NULL) == NNLRT_EUSER, "second run on the log");
    snprintf(want, sizeof want, ": error: the log is in use by another run (process %ld "
             "holds '%s.lock'): wait for it to end, or give this run another log", (long)pid,
             cfg.log_path);
    EXPECT_ONE_MESSAGE(cfg.log_path, want);
    EXPECT(!exists(other.checkpoint_path) && !exists(check_tmp_path("ck2.lock")),
           "the refused run left its checkpoint's lock");
    kill(pid, SIGKILL);
    int status = 0;
    EXPECT(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status), "holder killed");
    char lock[1200];
    snprintf(lock, sizeof lock, "%s.lock", cfg.checkpoint_path);
    EXPECT(exists(lock), "a killed run leaves its lock file");
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "after the kill: %s", check_message);
    EXPECT(!exists(lock), "the lock file is removed at the end");
    snprintf(lock, sizeof lock, "%s.lock", cfg.log_path);
    EXPECT(!exists(lock), "the log's lock file is removed at the end");
    remove_run_files();
}

/* ---- a run that does not resume replaces no checkpoint it did not write ---- */

/* A run without resume_path or fresh over a file at checkpoint_path: NNLRT_EUSER before
 * any step, `tail` reported, the checkpoint and the log byte for byte as they were. */
static void expect_fresh_refused(const NnlrtModel *m, NnlrtTrainConfig cfg, const char *tail)
{
    size_t nck, nlog, n2;
    uint8_t *ck = slurp(cfg.checkpoint_path, &nck), *log = slurp(cfg.log_path, &nlog);
    cfg.fresh = false;
    check_clear();
    EXPECT(nnlrt_train(m, &cfg, &train_set, NULL) == NNLRT_EUSER, "refused: %s", tail);
    EXPECT_ONE_MESSAGE(cfg.checkpoint_path, tail);
    uint8_t *after = slurp(cfg.checkpoint_path, &n2);
    EXPECT(ck && after && n2 == nck && memcmp(ck, after, nck) == 0, "the file is untouched");
    free(after);
    after = slurp(cfg.log_path, &n2);
    EXPECT(log && after && n2 == nlog && memcmp(log, after, nlog) == 0, "the log is untouched");
    free(after);
    free(log);
    free(ck);
}

static void test_fresh(void)
{
    NnlrtModel m = tm_model(4);
    NnlrtTrainConfig cfg = run_config(base_config());
    remove_run_files();
    cfg.fresh = false;
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "first run: %s", check_message);
    char want[1400];
    snprintf(want, sizeof want, ": error: a checkpoint is already there (step %d of a run of "
             "this model): go on from it with --resume %s, or start over with --fresh (which "
             "replaces it)", STEPS, cfg.checkpoint_path);
    expect_fresh_refused(&m, cfg, want);
    NnlrtModel m64 = tm_model(8);
    expect_fresh_refused(&m64, cfg, ": error: another model's checkpoint is already there, "
                         "where this run would write its checkpoint: start over with --fresh "
                         "(which replaces it), or give this run another checkpoint");
    m = tm_model(4); /* the toy model's settings are global: float32 again */
    /* resuming is not starting over */
    NnlrtTrainConfig res = cfg;
    res.fresh = false;
    res.epochs = EPOCHS + 1;
    res.resume_path = cfg.checkpoint_path;
    check_clear();
    EXPECT(nnlrt_train(&m, &res, &train_set, NULL) == 0, "resumed: %s", check_message);
    EXPECT(ckpt_step(cfg.checkpoint_path) == STEPS + STEPS / EPOCHS, "the resumed run's checkpoint");
    /* --fresh replaces it */
    cfg.fresh = true;
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "fresh: %s", check_message);
    EXPECT(ckpt_step(cfg.checkpoint_path) == STEPS, "the fresh run's checkpoint");
    FILE *f = fopen(cfg.checkpoint_path, "w");
    EXPECT(f && fputs("not a checkpoint\n", f) >= 0 && fclose(f) == 0, "write a text file");
    expect_fresh_refused(&m, cfg, ": error: a file that is not a checkpoint is already there, "
                         "where this run would write its checkpoint: start over with --fresh "
                         "(which replaces it), or give this run another checkpoint");
    remove_run_files();
}

/* ---- settings that do not go together ---- */

static void expect_config_error(NnlrtTrainConfig cfg, const char *want)
{
    NnlrtModel m = tm_model(4);
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == NNLRT_EUSER, "refused: %s", want);
    EXPECT_MESSAGE(NULL, want);
}

static void test_config(void)
{
    NnlrtTrainConfig cfg = base_config();
    cfg.checkpoint_path = check_tmp_path("ck");
    cfg.checkpoint_every = 1;
    cfg.checkpoint_every_steps = 2;
    expect_config_error(cfg, "nnlc: error: checkpoint_every and checkpoint_every_steps cannot "
                             "both be given: checkpoints are written by epochs or by steps");
    cfg = base_config();
    cfg.keep = 2;
    expect_config_error(cfg, "nnlc: error: checkpoint_every, checkpoint_every_steps and keep "
                             "need a checkpoint file");
    cfg = base_config();
    cfg.keep = -1;
    expect_config_error(cfg, "nnlc: error: checkpoint_every, checkpoint_every_steps, keep and "
                             "stop_after_steps cannot be negative");
    cfg = base_config();
    cfg.checkpoint_path = check_tmp_path("ck");
    cfg.keep = 1001;
    expect_config_error(cfg, "nnlc: error: keep is at most 1000");
    cfg = base_config();
    cfg.init_path = check_tmp_path("p");
    cfg.resume_path = check_tmp_path("ck");
    expect_config_error(cfg, "nnlc: error: a run starts from a parameter file (init) or goes on "
                             "from a checkpoint (resume), not both");
    NnlrtModel m = tm_model(4);
    cfg = base_config();
    cfg.resume_path = check_tmp_path("no-such-checkpoint");
    check_clear();
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == NNLRT_EIO, "missing checkpoint");
    EXPECT_MESSAGE(cfg.resume_path,
                   ": error: cannot open the checkpoint: No such file or directory");

    /* no checkpoint settings: the files a run writes are those it always wrote */
    cfg = base_config();
    cfg.log_path = check_tmp_path("plain.log");
    EXPECT(nnlrt_train(&m, &cfg, &train_set, NULL) == 0, "plain run: %s", check_message);
    EXPECT(count_tmp(check_tmp_dir()) == 0 && !exists(check_tmp_path("ck")),
           "no checkpoint written");
}

/* ---- main ---- */

static const CheckGroup groups[] = {
    CHECK_GROUP(resume, test_resume),
    CHECK_GROUP(truncate, test_truncate),
    CHECK_GROUP(bitflip, test_bitflip),
    CHECK_GROUP(model, test_model),
    CHECK_GROUP(failure, test_failure),
    CHECK_GROUP(stale, test_stale),
    CHECK_GROUP(keep, test_keep),
    CHECK_GROUP(signal, test_signal),
    CHECK_GROUP(kill, test_kill),
    CHECK_GROUP(config, test_config),
    CHECK_GROUP(lock, test_lock),
    CHECK_GROUP(fresh, test_fresh),
    CHECK_GROUP(table, test_table),
    CHECK_GROUP(options, test_options),
};

int main(int argc, char **argv)
{
    if (argc != 2)
        return check_usage("test_checkpoint", groups, CHECK_COUNT(groups), NULL);
    check_capture_messages();
    make_set(&train_set, 37, 1);
    make_set(&val_set, 11, 2);
    int rc = check_run(groups, CHECK_COUNT(groups), "test_checkpoint", argv[1]);
    nnlrt_dataset_free(&train_set);
    nnlrt_dataset_free(&val_set);
    return rc;
}
