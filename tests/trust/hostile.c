/* hostile.c — checkpoints with a valid CRC whose position does not hold together, made on
 * purpose with nnlrt_checkpoint_write (so the test follows the format), resumed by
 * nnlrt_train: each refused with "corrupt: its step count ...", exit code 1; consistent
 * ones resume and train to the end. The model and data are the checkpoint fuzzer's
 * (tests/fuzz/fuzz_files.c): 10 samples in batches of 4, 3 batches an epoch. */
#include "check.h"

#include <stdint.h>

#include "fuzz_files.h"
#include "nnlrt_int.h"

/* A checkpoint at this position, resumed for 3 epochs: the exit code. */
static int resume_at(const char *path, int64_t epoch, int64_t step, int64_t next_batch,
                     int64_t window_steps)
{
    NnlrtModel m = fuzz_model(4);
    float params[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f}, state[8] = {0};
    double sums[2] = {0, 0};
    void *states[1] = {state};
    NnlrtCheckpoint c = {.epoch = epoch, .step = step, .next_batch = next_batch,
                         .batch = FUZZ_TRAIN_BATCH, .n_train = FUZZ_TRAIN_N, .shuffled = true,
                         .last_loss = 1, .window_steps = window_steps, .n_sums = 2,
                         .sums = sums, .params = params, .states = states};
    nnlrt_rng_seed(&c.shuffle, 5);
    if (!nnlrt_checkpoint_write(path, 1, &m, &c)) {
        fprintf(stderr, "hostile: cannot write %s: %s\n", path, check_message);
        return -1;
    }
    check_clear();
    return fuzz_resume(path, 3);
}

static void expect(const char *path, int64_t epoch, int64_t step, int64_t next_batch,
                   int64_t window_steps, bool good)
{
    int rc = resume_at(path, epoch, step, next_batch, window_steps);
    bool ok = good ? rc == 0 && !check_message[0]
                   : rc == NNLRT_EUSER && strstr(check_message, ": error: corrupt: its step count");
    printf("epoch %lld, step %lld, next batch %lld, window %lld: exit %d %s\n",
           (long long)epoch, (long long)step, (long long)next_batch, (long long)window_steps,
           rc, check_message);
    EXPECT(ok, "expected %s", good ? "a resume" : "a refusal");
}

int main(void)
{
    check_capture_messages();
    const char *path = fuzz_path("hostile.ckpt");
    expect(path, 0, 0, 0, 0, true);
    expect(path, 1, 4, 1, 0, true);
    expect(path, 2, 8, 2, 1, true);
    expect(path, 3, 9, 0, 0, true); /* the end of the run */
    expect(path, 0, INT64_MAX, 0, 0, false);
    expect(path, 1, 5, 1, 0, false);
    expect(path, 1, 3, 1, 0, false);
    expect(path, 2, 7, 1, 8, false); /* more steps in the log's window than in the run */
    return check_failures ? 1 : 0;
}
