/* fuse.c — decides which nodes live in memory and lists each entry point's kernels.
 *
 * Invariants: an elementwise node is computed inline, inside the loop of whatever uses it,
 * unless several nodes use it or something that is not elementwise does (a matrix product
 * needs its operands in memory); then it is materialized once, in its own buffer. Every
 * non-elementwise node is materialized. A reshape shares its operand's memory. The update
 * entry is one loop over the parameter arena that computes every new value from the old
 * ones before storing any: it materializes nothing, so the update can be in place.
 */
#include <string.h>

#include "nnlc_int.h"

typedef struct {
    IrProgram *p;
    Plan *plan;
    bool *reach;         /* reachable from the roots of the entry being planned */
} Fuse;

static bool is_memory_leaf(const IrNode *n)
{
    return n->op == OP_INPUT || n->op == OP_TARGET || n->op == OP_PARAM || n->op == OP_ARENA;
}

static void fuse_leaf_location(IrProgram *p, IrNode *n)
{
    switch (n->op) {
    case OP_INPUT: n->buf = NNLRT_BUF_X; break;
    case OP_TARGET: n->buf = NNLRT_BUF_Y; break;
    case OP_PARAM:
        n->buf = NNLRT_BUF_PARAMS;
        n->buf_off = p->params[n->index].offset;
        break;
    case OP_ARENA:
        n->buf = n->index == ARENA_PARAMS ? NNLRT_BUF_PARAMS
               : n->index == ARENA_GRADS ? NNLRT_BUF_GRADS : BUF_STATE + n->aux;
        break;
    default: break;
    }
}

static int fuse_new_buf(Plan *plan, const Shape *s)
{
    int id = plan->nbufs++;
    plan->buf_elems = nnl_realloc(plan->buf_elems, sizeof(int64_t) * (size_t)plan->nbufs);
    plan->buf_batched = nnl_realloc(plan->buf_batched, sizeof(bool) * (size_t)plan->nbufs);
    plan->buf_elems[id] = shape_size(s);
    plan->buf_batched[id] = s->batched;
    return id;
}

/* Marks what the roots need; counts uses (edges) among the marked nodes. */
static void fuse_mark(Fuse *f, IrNode **roots, int nroots)
{
    IrProgram *p = f->p;
    memset(f->reach, 0, sizeof(bool) * (size_t)p->nnodes);
    for (int i = 0; i < nroots; i++)
        f->reach[roots[i]->id] = true;
    for (int i = p->nnodes - 1; i >= 0; i--) {
        if (!f->reach[i])
            continue;
        for (int k = 0; k < 3 && p->nodes[i]->in[k]; k++)
            f->reach[p->nodes[i]->in[k]->id] = true;
    }
}

/* Counts the uses of the marked nodes; an operand that must be in memory counts many. */
static void fuse_count_uses(Fuse *f)
{
    IrProgram *p = f->p;
    for (int i = 0; i < p->nnodes; i++)
        p->nodes[i]->uses = 0;
    for (int i = 0; i < p->nnodes; i++) {
        if (!f->reach[i])
            continue;
        IrNode *n = p->nodes[i];
        for (int k = 0; k < 3 && n->in[k]; k++) {
            IrNode *x = n->in[k];
            x->uses++;
            /* ops.def's MEMORY: the operands that must be in memory (pick's index need not) */
            if (ir_op_in_memory(n->op, k) && !is_memory_leaf(x) && x->buf < 0 &&
                ir_op_class(x->op) == OPC_ELEM)
                x->uses += 1000; /* forces it to be materialized */
        }
    }
}

/* What computing n inline costs in each loop that uses it: its cheap operations (add,
 * multiply, compare, select...) down to values in memory; FUSE_DEAR for anything dearer
 * (a division, a transcendental function, a random draw). cost[] holds the nodes before n. */
enum { FUSE_RECOMPUTE = 3, FUSE_DEAR = 1000 };

static int fuse_inline_cost(const IrNode *n, const int *cost)
{
    int own;
    switch (n->op) {
    case OP_BROADCAST: case OP_NOGRAD: case OP_RESHAPE: own = 0; break;
    case OP_NEG: case OP_ABS: case OP_ADD: case OP_SUB: case OP_MUL: case OP_MAX: case OP_MIN:
    case OP_LT: case OP_LE: case OP_GT: case OP_GE: case OP_EQ: case OP_NE: case OP_WHERE:
        own = 1;
        break;
    default: return FUSE_DEAR;
    }
    for (int k = 0; k < 3 && n->in[k] && own < FUSE_DEAR; k++) {
        const IrNode *x = n->in[k];
        bool free = x->buf >= 0 || x->op == OP_CONST || x->op == OP_VAR;
        own += free ? 0 : cost[x->id];
    }
    return own < FUSE_DEAR ? own : FUSE_DEAR;
}

/* Gives every marked node that must be in memory a location. An elementwise node that
 * several loops use is materialized, unless it costs at most FUSE_RECOMPUTE cheap
 * operations over values in memory: then each loop computes it again, which is cheaper than
 * storing a tensor and loading it back (batch normalization's x − mean, its normalized
 * value, relu's comparisons). */
static void fuse_materialize(Fuse *f, bool inline_all)
{
    IrProgram *p = f->p;
    int *cost = nnl_malloc(sizeof(int) * (size_t)p->nnodes);
    for (int i = 0; i < p->nnodes; i++)
        cost[i] = FUSE_DEAR;
    for (int i = 0; i < p->nnodes; i++) {
        IrNode *n = p->nodes[i];
        if (!f->reach[i] || n->buf >= 0)
            continue;
        if (is_memory_leaf(n)) {
            fuse_leaf_location(p, n);
            continue;
        }
        OpClass c = ir_op_class(n->op);
        bool materialize = c == OPC_REDUCE || c == OPC_MATMUL || c == OPC_GATHER || c == OPC_CALL;
        if (c == OPC_ELEM || n->op == OP_RAND || n->op == OP_RANDN) {
            cost[i] = fuse_inline_cost(n, cost);
            materialize = !inline_all && n->uses > 1 &&
                          (n->uses >= 1000 || cost[i] > FUSE_RECOMPUTE);
            IrNode *x = n->in[0];
            if (materialize && n->op == OP_BROADCAST && n->uses < 1000 &&
                ir_op_class(x->op) == OPC_ELEM && x->buf < 0) {
                /* a per-channel value broadcast to the batch: the value goes to memory
                 * (its one use was this broadcast), not a batch-sized copy of it */
                x->buf = fuse_new_buf(f->plan, &x->shape);
                cost[x->id] = 0;
                cost[i] = 0;
                materialize = false;
            }
        }
        if (c == OPC_VIEW) {
            n->buf = n->in[0]->buf;
            n->buf_off = n->in[0]->buf_off;
            continue;
        }
        if (materialize) {
            n->buf = fuse_new_buf(f->plan, &n->shape);
            cost[i] = 0;
        }
    }
    nnl_dealloc(cost);
}

static Kernel *fuse_add(Entry *e, KernelKind kind, IrNode *node)
{
    e->kernels = nnl_realloc(e->kernels, sizeof(Kernel) * (size_t)(e->nkernels + 1));
    Kernel *k = &e->kernels[e->nkernels++];
    *k = (Kernel){.kind = kind, .node = node};
    return k;
}

static void kernel_out(Kernel *k, IrNode *n, int buf, int64_t off)
{
    k->outs = nnl_realloc(k->outs, sizeof(KernelOut) * (size_t)(k->nouts + 1));
    k->outs[k->nouts++] = (KernelOut){n, buf, off};
}

/* The kernels that materialize the marked nodes, in topological order. */
static void fuse_compute_kernels(Fuse *f, Entry *e, int first_buf)
{
    IrProgram *p = f->p;
    for (int i = 0; i < p->nnodes; i++) {
        IrNode *n = p->nodes[i];
        if (!f->reach[i] || n->buf < first_buf || ir_op_class(n->op) == OPC_VIEW)
            continue;
        if (is_memory_leaf(n))
            continue;
        KernelKind kind = ir_op_kernel(n->op); /* ops.def's KERNEL */
        if (kind == K_ELEM)
            kernel_out(fuse_add(e, K_ELEM, n), n, n->buf, n->buf_off);
        else
            fuse_add(e, kind, n);
    }
}

/* Roots with a destination: a node used by nothing else is computed right there. */
static void fuse_place_roots(IrNode **roots, const int *bufs, const int64_t *offs, int n)
{
    for (int i = 0; i < n; i++) {
        IrNode *r = roots[i];
        if (r->buf < 0 && r->uses == 0 && !is_memory_leaf(r) && ir_op_class(r->op) != OPC_ELEM &&
            ir_op_class(r->op) != OPC_VIEW && r->op != OP_CONST) {
            r->buf = bufs[i];
            r->buf_off = offs[i];
        }
    }
}

static void fuse_entry_with_dests(Fuse *f, Entry *e, IrNode **roots, const int *bufs,
                                  const int64_t *offs, int n, IrNode **sums, int nsums,
                                  bool inline_all)
{
    int nall = n + nsums;
    IrNode **all = nnl_malloc(sizeof(IrNode *) * (size_t)(nall + 1));
    for (int i = 0; i < n; i++)
        all[i] = roots[i];
    for (int i = 0; i < nsums; i++)
        all[n + i] = sums[i];
    fuse_mark(f, all, nall);
    fuse_count_uses(f);
    fuse_place_roots(roots, bufs, offs, n);
    fuse_materialize(f, inline_all);
    fuse_compute_kernels(f, e, 0);
    /* outputs not yet where they belong: one elementwise loop per shape */
    Kernel *last = NULL;
    for (int i = 0; i < n; i++) {
        IrNode *r = roots[i];
        if (r->buf == bufs[i] && r->buf_off == offs[i])
            continue;
        if (!last || !shape_equal(&last->outs[0].node->shape, &r->shape) || !inline_all)
            last = fuse_add(e, K_ELEM, NULL);
        kernel_out(last, r, bufs[i], offs[i]);
    }
    for (int i = 0; i < nsums; i++)
        fuse_add(e, K_SUMOUT, sums[i])->sum_index = i;
    nnl_dealloc(all);
}

/* Whether x's value, computed inline, reads r: x is r, or an operand not in memory does.
 * *budget bounds the walk (an expression DAG can be walked along many paths); running out
 * answers yes, which only keeps two loops apart. */
static bool fuse_reads(const IrNode *x, const IrNode *r, int *budget)
{
    if (x == r || --*budget <= 0)
        return true;
    if (x->buf >= 0)
        return false;
    for (int k = 0; k < 3 && x->in[k]; k++)
        if (fuse_reads(x->in[k], r, budget))
            return true;
    return false;
}

/* Whether reduction k can join the loop of the reductions of prev (adjacent kernels): the
 * same operand shape and result shape, and k's operand reads none of prev's results (an
 * operand that depended on them through memory would have a kernel in between). */
static bool fuse_reductions_join(const Kernel *prev, const Kernel *k)
{
    const IrNode *a = prev->node, *b = k->node;
    if (!shape_equal(&a->in[0]->shape, &b->in[0]->shape) || !shape_equal(&a->shape, &b->shape))
        return false;
    int n = prev->nouts ? prev->nouts : 1;
    for (int o = 0; o < n; o++) {
        int budget = 10000;
        if (fuse_reads(b->in[0], prev->nouts ? prev->outs[o].node : a, &budget))
            return false;
    }
    return true;
}

/* Whether reduction kernel k can join elementwise kernel prev's loop: k reduces prev's
 * space, and reads none of the reductions prev's loop already makes (they are complete
 * only after it). It may read prev's outputs: the loop has them at hand. */
static bool fuse_reduction_joins_loop(const Kernel *prev, const Kernel *k)
{
    if (!shape_equal(&prev->outs[0].node->shape, &k->node->in[0]->shape))
        return false;
    int n = k->nouts ? k->nouts : 1;
    for (int o = 0; o < n; o++) {
        const IrNode *r = k->nouts ? k->outs[o].node : k->node;
        for (int q = 0; q < prev->nreds; q++) {
            int budget = 10000;
            if (fuse_reads(r->in[0], prev->reds[q].node, &budget))
                return false;
        }
    }
    return true;
}

/* Consecutive elementwise loops over the same space become one loop with several outputs:
 * a later output reads an earlier one from a register instead of memory. Consecutive
 * independent reductions of the same space become one loop with several accumulators (batch
 * normalization's gradient sums dy and dy·x̂ in one pass); their nodes are then in outs. A
 * reduction of an elementwise loop's space joins that loop (reds): the values it sums are
 * not read from memory again. */
static void fuse_merge_loops(Entry *e)
{
    int w = 0;
    for (int i = 0; i < e->nkernels; i++) {
        Kernel *k = &e->kernels[i];
        Kernel *prev = w > 0 ? &e->kernels[w - 1] : NULL;
        if (prev && prev->kind == K_REDUCE && k->kind == K_REDUCE &&
            fuse_reductions_join(prev, k)) {
            if (!prev->nouts)
                kernel_out(prev, prev->node, prev->node->buf, prev->node->buf_off);
            kernel_out(prev, k->node, k->node->buf, k->node->buf_off);
            continue;
        }
        if (prev && prev->kind == K_ELEM && k->kind == K_REDUCE &&
            fuse_reduction_joins_loop(prev, k)) {
            int n = k->nouts ? k->nouts : 1;
            for (int o = 0; o < n; o++) {
                IrNode *r = k->nouts ? k->outs[o].node : k->node;
                prev->reds = nnl_realloc(prev->reds, sizeof(KernelOut) * (size_t)(prev->nreds + 1));
                prev->reds[prev->nreds++] = (KernelOut){r, r->buf, r->buf_off};
            }
            nnl_dealloc(k->outs);
            continue;
        }
        if (prev && prev->kind == K_ELEM && k->kind == K_ELEM && !prev->nreds &&
            shape_equal(&prev->outs[0].node->shape, &k->outs[0].node->shape)) {
            for (int o = 0; o < k->nouts; o++)
                kernel_out(prev, k->outs[o].node, k->outs[o].buf, k->outs[o].off);
            nnl_dealloc(k->outs);
            continue;
        }
        e->kernels[w++] = *k;
    }
    e->nkernels = w;
}

/* The parameter a per-channel bias of F channels is, when b is one: [F, 1, 1], a parameter
 * or a reshape of one (the same F numbers); else NULL. */
static IrNode *fuse_bias_param(IrNode *b, int64_t F)
{
    if (b->shape.batched || b->shape.rank != 3 || b->shape.dim[0] != F ||
        b->shape.dim[1] != 1 || b->shape.dim[2] != 1)
        return NULL;
    while (b->op == OP_RESHAPE)
        b = b->in[0];
    return b->op == OP_PARAM ? b : NULL;
}

/* A convolution whose one use adds a per-channel bias (conv2d's `convolve2d(x, W, ...) +
 * reshape(b, [F, 1, 1])`) takes the bias as its third operand: the runtime routine starts
 * every output from it (the direct kernel's accumulators, im2col's copy into place), and
 * the sum is no separate pass over the output. The sum becomes a view of the convolution.
 * Autodiff has run: the gradients use the convolution's operands, not this sum. The operand
 * is the parameter leaf itself, not the reshape (created after the convolution: the node
 * order must stay topological). */
static void fuse_conv_bias(IrProgram *p)
{
    int *uses = nnl_malloc(sizeof(int) * (size_t)p->nnodes);
    memset(uses, 0, sizeof(int) * (size_t)p->nnodes);
    for (int i = 0; i < p->nnodes; i++)
        for (int k = 0; k < 3 && p->nodes[i]->in[k]; k++)
            uses[p->nodes[i]->in[k]->id]++;
    for (int i = 0; i < p->nnodes; i++) {
        IrNode *n = p->nodes[i];
        if (n->op != OP_ADD)
            continue;
        for (int k = 0; k < 2; k++) {
            IrNode *c = n->in[k], *b = fuse_bias_param(n->in[1 - k], c->shape.dim[0]);
            if (c->op != OP_CONV2D || c->in[2] || uses[c->id] != 1 || c == p->output ||
                !shape_equal(&c->shape, &n->shape) || !b)
                continue;
            c->in[2] = b;
            n->op = OP_RESHAPE;
            n->in[0] = c;
            n->in[1] = NULL;
            break;
        }
    }
    nnl_dealloc(uses);
}

static bool fuse_is_zero(const IrNode *n)
{
    return n->op == OP_CONST && n->value == 0;
}

/* Whether r is the standard library's relu of v, where(v > 0, v, where(v <= 0, 0, v)) */
static bool fuse_is_relu(const IrNode *r, const IrNode *v)
{
    const IrNode *gt = r->in[0], *inner = r->in[2];
    if (r->op != OP_WHERE || r->in[1] != v || gt->op != OP_GT || gt->in[0] != v ||
        !fuse_is_zero(gt->in[1]) || inner->op != OP_WHERE || inner->in[2] != v ||
        !fuse_is_zero(inner->in[1]))
        return false;
    const IrNode *le = inner->in[0];
    return le->op == OP_LE && le->in[0] == v && fuse_is_zero(le->in[1]);
}

/* Whether node u uses v only in ways relu(v) serves as well as v: v > 0, v <= 0, or as a
 * branch of relu's two `where`s (taken only where v > 0, or v is NaN). */
static bool fuse_relu_invariant_use(const IrNode *u, const IrNode *v, const IrNode *relu)
{
    if ((u->op == OP_GT || u->op == OP_LE) && u->in[0] == v && fuse_is_zero(u->in[1]))
        return true;
    return u == relu || u == relu->in[2];
}

/* A convolution (or its bias view) that only relu reads: the routine applies relu as it
 * writes (conv->index = 1), and relu's result becomes a view of the convolution's. Every
 * other reader (the gradient's masks v > 0 and v <= 0) gets the same answers from relu(v)
 * as from v, so the graph is otherwise left as it is. */
static void fuse_conv_relu(IrProgram *p)
{
    for (int i = 0; i < p->nnodes; i++) {
        IrNode *r = p->nodes[i];
        if (r->op != OP_WHERE)
            continue;
        IrNode *v = r->in[1];
        IrNode *c = v->op == OP_RESHAPE ? v->in[0] : v;
        if (c->op != OP_CONV2D || c->index || v == p->output || !fuse_is_relu(r, v) ||
            !shape_equal(&r->shape, &c->shape))
            continue;
        bool only = true;
        for (int j = 0; j < p->nnodes && only; j++) {
            const IrNode *u = p->nodes[j];
            for (int k = 0; k < 3 && u->in[k] && only; k++)
                if (u->in[k] == v && !fuse_relu_invariant_use(u, v, r))
                    only = false;
            /* the convolution itself read through another view: not ours to change */
            for (int k = 0; k < 3 && u->in[k] && only; k++)
                if (u != v && u->in[k] == c && v != c)
                    only = false;
        }
        if (!only)
            continue;
        c->index = 1;
        r->op = OP_RESHAPE;
        r->in[0] = v;
        r->in[1] = r->in[2] = NULL;
    }
}

void fuse_plan(Nnl *nnl, IrProgram *p, Plan *plan)
{
    (void)nnl;
    fuse_conv_bias(p);
    fuse_conv_relu(p);
    *plan = (Plan){.nbufs = NNLRT_BUF_FIRST};
    plan->buf_elems = nnl_malloc(sizeof(int64_t) * NNLRT_BUF_FIRST);
    plan->buf_batched = nnl_malloc(sizeof(bool) * NNLRT_BUF_FIRST);
    int64_t in_size = shape_size(&p->input->shape);
    int64_t fixed[NNLRT_BUF_FIRST] = {p->nparam_elems, p->nparam_elems, in_size, 1};
    for (int i = 0; i < NNLRT_BUF_FIRST; i++) {
        plan->buf_elems[i] = fixed[i];
        plan->buf_batched[i] = i >= NNLRT_BUF_X;
    }
    Fuse f = {.p = p, .plan = plan};
    f.reach = nnl_malloc(sizeof(bool) * (size_t)p->nnodes);
    int np = p->nparams, nm = p->nmetrics;
    IrNode **roots = nnl_malloc(sizeof(IrNode *) * (size_t)(np + p->nstates + 1));
    IrNode **sums = nnl_malloc(sizeof(IrNode *) * (size_t)(nm + 1));
    int *bufs = nnl_malloc(sizeof(int) * (size_t)(np + p->nstates + 1));
    int64_t *offs = nnl_malloc(sizeof(int64_t) * (size_t)(np + p->nstates + 1));
    sums[0] = p->loss;
    for (int i = 0; i < nm; i++)
        sums[1 + i] = p->metrics[i];

    /* update first: it must not reuse the forward's materialized nodes */
    plan->entries[ENTRY_UPDATE].name = "nnl_update";
    roots[0] = p->new_params;
    bufs[0] = NNLRT_BUF_PARAMS;
    offs[0] = 0;
    for (int k = 0; k < p->nstates; k++) {
        roots[1 + k] = p->new_states[k];
        bufs[1 + k] = BUF_STATE + k;
        offs[1 + k] = 0;
    }
    fuse_entry_with_dests(&f, &plan->entries[ENTRY_UPDATE], roots, bufs, offs, 1 + p->nstates,
                          NULL, 0, true);

    plan->entries[ENTRY_INIT].name = "nnl_init";
    for (int i = 0; i < np; i++) {
        roots[i] = p->params[i].init;
        bufs[i] = NNLRT_BUF_PARAMS;
        offs[i] = p->params[i].offset;
    }
    fuse_entry_with_dests(&f, &plan->entries[ENTRY_INIT], roots, bufs, offs, np, NULL, 0,
                          false);

    plan->entries[ENTRY_GRAD].name = "nnl_grad";
    for (int i = 0; i < np; i++) {
        roots[i] = p->params[i].grad;
        bufs[i] = NNLRT_BUF_GRADS;
        offs[i] = p->params[i].offset;
    }
    fuse_entry_with_dests(&f, &plan->entries[ENTRY_GRAD], roots, bufs, offs, np, sums, 1 + nm,
                          false);

    plan->entries[ENTRY_EVAL].name = "nnl_eval";
    fuse_entry_with_dests(&f, &plan->entries[ENTRY_EVAL], NULL, NULL, NULL, 0, sums, 1 + nm,
                          false);

    /* predict last: it only reaches forward nodes, which eval has placed already */
    plan->entries[ENTRY_PREDICT].name = "nnl_predict";
    roots[0] = p->output;
    bufs[0] = BUF_OUT;
    offs[0] = 0;
    fuse_entry_with_dests(&f, &plan->entries[ENTRY_PREDICT], roots, bufs, offs, 1, NULL, 0,
                          false);
    for (int e = 0; e < ENTRY_COUNT; e++)
        fuse_merge_loops(&plan->entries[e]);
    nnl_dealloc(f.reach);
    nnl_dealloc(roots);
    nnl_dealloc(sums);
    nnl_dealloc(bufs);
    nnl_dealloc(offs);
}

void fuse_free(Plan *plan)
{
    for (int e = 0; e < ENTRY_COUNT; e++) {
        for (int i = 0; i < plan->entries[e].nkernels; i++) {
            nnl_dealloc(plan->entries[e].kernels[i].outs);
            nnl_dealloc(plan->entries[e].kernels[i].reds);
        }
        nnl_dealloc(plan->entries[e].kernels);
    }
    nnl_dealloc(plan->buf_elems);
    nnl_dealloc(plan->buf_batched);
}

static const char *const kernel_names[] = {
    [K_ELEM] = "elementwise", [K_REDUCE] = "reduce", [K_MATMUL] = "matmul",
    [K_PICK] = "pick", [K_ARGMAX] = "argmax", [K_SUMOUT] = "sum-out",
    [K_CALL] = "call",
};

static void fuse_dump_loc(StrBuf *out, int buf, int64_t off)
{
    if (buf >= BUF_STATE)
        sb_printf(out, "state%d", buf - BUF_STATE);
    else if (buf == BUF_OUT)
        sb_printf(out, "out+%lld", (long long)off);
    else if (buf == NNLRT_BUF_PARAMS)
        sb_printf(out, "params+%lld", (long long)off);
    else if (buf == NNLRT_BUF_GRADS)
        sb_printf(out, "grads+%lld", (long long)off);
    else
        sb_printf(out, "buf%d", buf);
}

void fuse_dump(StrBuf *out, const IrProgram *p, const Plan *plan)
{
    Arena tmp = {0};
    for (int b = NNLRT_BUF_FIRST; b < plan->nbufs; b++)
        sb_printf(out, "buf%d: %lld%s\n", b, (long long)plan->buf_elems[b],
                  plan->buf_batched[b] ? " per sample" : "");
    for (int e = 0; e < ENTRY_COUNT; e++) {
        const Entry *en = &plan->entries[e];
        sb_printf(out, "\n%s:\n", en->name);
        for (int i = 0; i < en->nkernels; i++) {
            const Kernel *k = &en->kernels[i];
            sb_printf(out, "  %s", kernel_names[k->kind]);
            if (k->kind == K_ELEM) {
                for (int o = 0; o < k->nouts; o++) {
                    sb_printf(out, "%s%%%d -> ", o ? ", " : " ", k->outs[o].node->id);
                    fuse_dump_loc(out, k->outs[o].buf, k->outs[o].off);
                }
                sb_printf(out, " over %s", shape_str(&tmp, &k->outs[0].node->shape));
                for (int o = 0; o < k->nreds; o++) {
                    sb_printf(out, "%s%%%d -> ", o ? ", " : "; reduce ", k->reds[o].node->id);
                    fuse_dump_loc(out, k->reds[o].buf, k->reds[o].off);
                }
                if (k->nreds)
                    sb_printf(out, " %s", shape_str(&tmp, &k->reds[0].node->shape));
                sb_printf(out, "\n");
            } else if (k->kind == K_SUMOUT) {
                sb_printf(out, " %%%d -> sums[%d]\n", k->node->id, k->sum_index);
            } else if (k->kind == K_REDUCE && k->nouts) {
                for (int o = 0; o < k->nouts; o++) {
                    sb_printf(out, "%s%%%d -> ", o ? ", " : " ", k->outs[o].node->id);
                    fuse_dump_loc(out, k->outs[o].buf, k->outs[o].off);
                }
                sb_printf(out, " %s\n", shape_str(&tmp, &k->node->shape));
            } else {
                sb_printf(out, " %%%d -> ", k->node->id);
                fuse_dump_loc(out, k->node->buf, k->node->buf_off);
                sb_printf(out, " %s", shape_str(&tmp, &k->node->shape));
                if (k->node->op == OP_CONV2D && k->node->in[2])
                    sb_printf(out, " + bias %%%d", k->node->in[2]->id);
                if (k->node->op == OP_CONV2D && k->node->index == 1)
                    sb_printf(out, ", relu");
                sb_printf(out, "\n");
            }
        }
    }
    (void)p;
    arena_free(&tmp);
}
