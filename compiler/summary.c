/* summary.c — nnlc check --summary: what a compiled model is, in numbers.
 *
 * Layers are the groups of parameters that share a name before the '.' (h1.W, h1.b: the
 * layer h1, as the layer call's assignment named them); a layer's output shape is that of
 * the matrix product or convolution its weights take part in, when there is one. FLOPs are
 * counted on the tensor graph, one per element of an elementwise or reduced value (or of
 * a pooling window's input), 2·m·n·k per matrix product, 2·(output size)·C·KH·KW per
 * convolution and each of its two gradients: per sample for the batched values; the unbatched ones (the optimizer's
 * work on the parameters) once per step. Memory is the runtime's buffers for a batch.
 */
#include <string.h>

#include "nnlc_int.h"

typedef struct {
    double per_sample;  /* FLOPs of batched values, per sample */
    double per_step;    /* FLOPs of unbatched values, per step */
    double matmul;      /* of which matrix products, per sample */
} Flops;

/* The FLOPs of computing node n once. */
static void summary_node_flops(const IrNode *n, Flops *f)
{
    double work;
    switch (ir_op_class(n->op)) {
    case OPC_LEAF:
    case OPC_VIEW:
        return;
    case OPC_MATMUL: {
        int64_t ar, ac, br, bc;
        ir_matrix_dims(n->in[0], &ar, &ac);
        ir_matrix_dims(n->in[1], &br, &bc);
        bool ta = n->aux & 1;
        int64_t k = ta ? (ar < 0 ? 1 : ar) : ac; /* the B rows count once per sample */
        work = 2.0 * (double)shape_size(&n->shape) * (double)k;
        if (n->shape.batched)
            f->matmul += work;
        break;
    }
    case OPC_REDUCE:
        work = (double)shape_size(&n->in[0]->shape);
        break;
    case OPC_CALL: {
        const OpCall *call = ir_op_call(n->op);
        const IrNode *image = ir_call_role(n, call->image);
        if (call->sig == CALL_POOL) { /* one operation per element of the image */
            work = (double)shape_size(&image->shape);
            break;
        }
        /* 2 FLOPs per kernel element per output element: dy's size times C·KH·KW */
        const IrNode *w = ir_call_role(n, call->weights), *out = ir_call_role(n, call->out);
        work = 2.0 * (double)shape_size(&out->shape) *
               (double)(shape_size(&w->shape) / w->shape.dim[0]);
        if (n->in[2]) /* a bias fused in: one add per output */
            work += (double)shape_size(&n->shape);
        if (call->sig == CALL_CONV_BIAS) /* the forward pass */
            f->matmul += work;
        break;
    }
    default:
        work = (double)shape_size(&n->shape);
    }
    /* a product whose rows are the batch (the weights' gradient) sums over samples */
    bool batched = n->shape.batched || (n->in[0] && n->in[0]->shape.batched);
    if (batched)
        f->per_sample += work;
    else
        f->per_step += work;
}

/* FLOPs of the nodes the roots need, each counted once. */
static Flops summary_flops(const IrProgram *p, IrNode *const *roots, int nroots, bool *mark)
{
    memset(mark, 0, sizeof(bool) * (size_t)p->nnodes);
    for (int i = 0; i < nroots; i++)
        if (roots[i])
            mark[roots[i]->id] = true;
    Flops f = {0};
    for (int i = p->nnodes - 1; i >= 0; i--) {
        if (!mark[i])
            continue;
        const IrNode *n = p->nodes[i];
        for (int k = 0; k < 3 && n->in[k]; k++)
            mark[n->in[k]->id] = true;
        summary_node_flops(n, &f);
    }
    return f;
}

static void summary_number(StrBuf *b, double v)
{
    static const char *const units[] = {"", "k", "M", "G", "T"};
    int u = 0;
    while (v >= 1000 && u < 4)
        v /= 1000, u++;
    sb_printf(b, u ? "%.3g%s" : "%.0f%s", v, units[u]);
}

static void summary_bytes(StrBuf *b, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    sb_printf(b, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* The output shape of the matrix product parameter i takes part in, or NULL. */
static const IrNode *summary_layer_output(const IrProgram *p, int i, int forward)
{
    for (int k = 0; k < forward; k++) {
        const IrNode *n = p->nodes[k];
        const OpCall *call = ir_op_call(n->op);
        bool forward_conv = call && call->sig == CALL_CONV_BIAS;
        if ((ir_op_class(n->op) == OPC_MATMUL || forward_conv) &&
            (n->in[0] == p->params[i].node || n->in[1] == p->params[i].node))
            return n;
    }
    return NULL;
}

static size_t summary_prefix(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

static void summary_layers(StrBuf *b, Arena *tmp, const IrProgram *p, int forward)
{
    sb_printf(b, "\n%-14s %-16s %-14s %12s\n", "layer", "parameter", "shape", "count");
    int64_t total = 0;
    for (int i = 0; i < p->nparams; i++) {
        const IrParam *prm = &p->params[i];
        size_t len = summary_prefix(prm->name);
        bool first = i == 0 || summary_prefix(p->params[i - 1].name) != len ||
                     strncmp(p->params[i - 1].name, prm->name, len) != 0;
        const IrNode *out = NULL;
        for (int j = i; first && !out && j < p->nparams &&
                        summary_prefix(p->params[j].name) == len &&
                        strncmp(p->params[j].name, prm->name, len) == 0; j++)
            out = summary_layer_output(p, j, forward);
        char layer[64] = "";
        if (first)
            snprintf(layer, sizeof layer, "%.*s", (int)(len < 40 ? len : 40), prm->name);
        sb_printf(b, "%-14s %-16s %-14s %12lld", layer, prm->name, shape_str(tmp, &prm->shape),
                  (long long)prm->size);
        if (out)
            sb_printf(b, "   -> %s", shape_str(tmp, &out->shape));
        sb_putc(b, '\n');
        total += prm->size;
    }
    sb_printf(b, "%-14s %-16s %-14s %12lld  (", "total", "", "", (long long)total);
    summary_bytes(b, (double)total * 4);
    sb_puts(b, " in float32)\n");
}

void summary_write(StrBuf *b, const TrainSpec *spec, const IrProgram *p, const Plan *plan,
                   int forward, int64_t batch, int64_t samples, int elem_size)
{
    Arena tmp = {0};
    sb_printf(b, "model %s (train %s)\n", spec->model->name, spec->decl->name);
    sb_printf(b, "  input   %-14s %lld samples of '%s'\n", shape_str(&tmp, &p->input->shape),
              (long long)samples, spec->data->spec.name);
    sb_printf(b, "  output  %-14s ", shape_str(&tmp, &p->output->shape));
    if (p->target_kind == NNLRT_TARGET_CLASS)
        sb_printf(b, "a score for each of %lld classes\n", (long long)p->n_classes);
    else
        sb_puts(b, "values\n");
    summary_layers(b, &tmp, p, forward);

    bool *mark = nnl_malloc(sizeof(bool) * (size_t)(p->nnodes + 1));
    IrNode *fwd[1] = {p->output};
    Flops f = summary_flops(p, fwd, 1, mark);
    int nroots = p->nparams + 2 + p->nstates;
    IrNode **roots = nnl_malloc(sizeof(IrNode *) * (size_t)nroots);
    for (int i = 0; i < p->nparams; i++)
        roots[i] = p->params[i].grad;
    roots[p->nparams] = p->loss;
    roots[p->nparams + 1] = p->new_params;
    for (int k = 0; k < p->nstates; k++)
        roots[p->nparams + 2 + k] = p->new_states[k];
    Flops t = summary_flops(p, roots, nroots, mark);
    nnl_dealloc(roots);
    nnl_dealloc(mark);
    sb_puts(b, "\nFLOPs per sample: forward ");
    summary_number(b, f.per_sample);
    sb_puts(b, " (matrix products and convolutions ");
    summary_number(b, f.matmul);
    sb_puts(b, "); a training step ");
    summary_number(b, t.per_sample);
    sb_puts(b, " per sample and ");
    summary_number(b, t.per_step);
    sb_puts(b, " per step (the update)\n");

    /* the runtime's buffers for a step of `batch` samples (train_loop.c: nnlrt_buffers_init) */
    double params = (double)p->nparam_elems * elem_size;
    double acts = 0;
    for (int i = NNLRT_BUF_FIRST; i < plan->nbufs; i++)
        acts += (double)plan->buf_elems[i] * (plan->buf_batched[i] ? (double)batch : 1) *
                elem_size;
    double io = (double)batch * (double)(shape_size(&p->input->shape) + 1) * elem_size;
    sb_printf(b, "memory with batch %lld (%s): parameters ", (long long)batch,
              elem_size == 4 ? "float32" : "float64");
    summary_bytes(b, params);
    sb_puts(b, ", gradients ");
    summary_bytes(b, params);
    sb_printf(b, ", optimizer state ");
    summary_bytes(b, params * p->nstates);
    sb_printf(b, " (%d array%s), activations ", p->nstates, p->nstates == 1 ? "" : "s");
    summary_bytes(b, acts);
    sb_puts(b, ", batch data ");
    summary_bytes(b, io);
    sb_puts(b, "; total ");
    summary_bytes(b, params * (2 + p->nstates) + acts + io);
    sb_puts(b, "\n");
    arena_free(&tmp);
}
