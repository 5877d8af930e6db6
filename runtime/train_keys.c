/* train_keys.c — the train keys of the language as a table (rows in train_keys.def). */
#include <stddef.h>
#include <string.h>

#include "nnlrt.h"

const NnlrtTrainKey nnlrt_train_keys[NNLRT_TRAIN_KEY_COUNT] = {
#define RUN_KEY(id, name, kind, least, def, what, flags, field) \
    {name, kind, least, def, what, flags, (int)offsetof(NnlrtTrainConfig, field)},
#define MODEL_KEY(id, name, kind, least, def, what, flags, field) \
    {name, kind, least, def, what, flags, -1},
#include "train_keys.def"
#undef RUN_KEY
#undef MODEL_KEY
};

int nnlrt_train_key(const char *name)
{
    for (int k = 0; k < NNLRT_TRAIN_KEY_COUNT; k++)
        if (strcmp(nnlrt_train_keys[k].name, name) == 0)
            return k;
    return -1;
}

void nnlrt_train_defaults(NnlrtTrainConfig *c)
{
    for (int k = 0; k < NNLRT_TRAIN_KEY_COUNT; k++) {
        const NnlrtTrainKey *key = &nnlrt_train_keys[k];
        void *field = (char *)c + key->offset;
        if (key->offset < 0)
            continue;
        if (key->kind == NNLRT_KEY_INT || key->kind == NNLRT_KEY_BATCH)
            *(int64_t *)field = key->def;
        else if (key->kind == NNLRT_KEY_SEED)
            *(uint64_t *)field = (uint64_t)key->def;
        else if (key->kind == NNLRT_KEY_BOOL)
            *(bool *)field = key->def != 0;
    }
}
