/* use_lib.c — a C program using a model built with nnlc build --lib (tests/infer/infer.sh):
 * loads the checkpoint argv[1], reads samples (iris_INPUTS numbers a line, commas between)
 * from standard input and prints each sample's outputs as nnlc predict writes them. */
#include <stdio.h>
#include <stdlib.h>

#include "iris.h"

int main(int argc, char **argv)
{
    if (argc != 2 || iris_load(argv[1]) != 0) {
        fprintf(stderr, "use_lib: %s\n", argc == 2 ? iris_error() : "usage: use_lib CKPT");
        return 1;
    }
    static float x[1000 * iris_INPUTS], out[1000 * iris_OUTPUTS];
    int n = 0;
    while (n < 1000) {
        int k = 0;
        for (; k < iris_INPUTS; k++)
            if (scanf(k ? ",%f" : "%f", &x[n * iris_INPUTS + k]) != 1)
                break;
        if (k < iris_INPUTS)
            break;
        n++;
    }
    if (iris_predict(x, out, n) != 0) {
        fprintf(stderr, "use_lib: %s\n", iris_error());
        return 1;
    }
    printf("output0");
    for (int k = 1; k < iris_OUTPUTS; k++)
        printf(",output%d", k);
    printf("\n");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < iris_OUTPUTS; k++)
            printf("%.9g%c", out[i * iris_OUTPUTS + k], k + 1 < iris_OUTPUTS ? ',' : '\n');
    return 0;
}
