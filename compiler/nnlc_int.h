/* nnlc_int.h — the one internal header of libnnlc, a section per file. */
#ifndef NNLC_INT_H
#define NNLC_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nnlc.h"
#include "nnlrt_util.h"

#define NNL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define NNL_COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

/* Limits. Each one, when exceeded, is a diagnostic, never a crash. */
enum {
    NNL_MAX_FILE_BYTES = 1 << 20, /* a script of more than 1 MiB is refused */
    NNL_MAX_IDENT = 255,          /* bytes in an identifier */
    NNL_MAX_STRING = 4096,        /* bytes in a string literal, after escapes */
    NNL_MAX_NUMBER = 64,          /* characters in a number literal */
    NNL_MAX_NESTING = 1000,       /* depth of the expression tree */
    NNL_MAX_PARSE_DEPTH = 1500,   /* entries on the parser stack */
    NNL_MAX_ERRORS = 20,          /* errors reported before giving up */
};

/* ---- util.c: the one allocation function, arenas, growable lists ---- */

/* Every allocation of the compiler goes through nnl_malloc; on failure it reports
 * "out of memory" and exits with status 2 (NNL_EUSAGE: a resource problem, not a bug). */
void *nnl_malloc(size_t size);
void *nnl_realloc(void *p, size_t size);
void nnl_dealloc(void *p);

typedef struct ArenaChunk ArenaChunk;
typedef struct {
    ArenaChunk *head;
} Arena;

void *arena_alloc(Arena *a, size_t size);            /* zeroed, 16-byte aligned */
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) NNL_PRINTF(2, 3);
char *arena_vprintf(Arena *a, const char *fmt, va_list ap);
void arena_free(Arena *a);

/* Growable text buffer for building messages and dumps: the runtime's string
 * (runtime/str.c), under the compiler's names. Running out of memory there reports
 * "nnlc: error: out of memory (allocating N bytes)" and exits with status 2, as
 * nnl_malloc does. */
typedef NnlrtStr StrBuf;

static inline void sb_putc(StrBuf *b, char c) { nnlrt_str_putc(b, c); }
static inline void sb_puts(StrBuf *b, const char *s) { nnlrt_str_puts(b, s); }
static inline void sb_putn(StrBuf *b, const char *s, size_t n) { nnlrt_str_putn(b, s, n); }
static inline void sb_free(StrBuf *b) { nnlrt_str_free(b); }
#define sb_printf nnlrt_str_printf

/* Number of bytes of the UTF-8 sequence starting at s (at most n), or 0 if invalid. */
int utf8_seq_len(const unsigned char *s, size_t n);

/* ---- loaded scripts and positions (nnl.c loads them, diag.c's source_linecol) ---- */

typedef struct {
    const char *path;   /* display name */
    const char *text;   /* len bytes followed by a NUL */
    uint32_t len;
    bool is_stdlib;
    uint32_t *line_starts; /* lazily built */
    uint32_t nlines;
} Source;

typedef struct {
    uint32_t line, col; /* 1-based; col counts characters, not bytes */
} LineCol;

LineCol source_linecol(Source *src, uint32_t off);

/* ---- diag.c: reporting through the client's callback ---- */

void diag_error(Nnl *nnl, Source *src, uint32_t off, const char *fmt, ...) NNL_PRINTF(4, 5);
void diag_verror(Nnl *nnl, NnlSeverity sev, Source *src, uint32_t off, const char *fmt, va_list ap);
void diag_note(Nnl *nnl, Source *src, uint32_t off, const char *fmt, ...) NNL_PRINTF(4, 5);
/* An error about a whole file or the command line (no position). */
void diag_file_error(Nnl *nnl, const char *path, const char *fmt, ...) NNL_PRINTF(3, 4);
/* True once the error cap is reached: stages stop early. */
bool diag_stopped(const Nnl *nnl);
/* "L:C" of an offset, for messages that point back ("to close '(' at 3:14"). */
const char *diag_at(Nnl *nnl, Source *src, uint32_t off);

/* ---- lexer.re (re2c writes lexer.c in the build tree): bytes to tokens ---- */

typedef struct {
    int kind;       /* TK_* from parser.h; TK_EOF (0) at the end */
    uint32_t off;   /* byte offset of the first character */
    uint32_t len;
} Token;

enum { TK_EOF = 0 };

typedef struct {
    Nnl *nnl;
    Source *src;
    const unsigned char *cur, *lim, *mar;
    bool semicolon; /* the last TK_NEWLINE came from ';' rather than a line break */
} Lexer;

void lex_init(Lexer *lx, Nnl *nnl, Source *src);
/* The next token, including TK_NEWLINE for line breaks and ';'. Lexical errors are
 * reported and skipped, so the stream is always well-formed. */
Token lex_next(Lexer *lx);
const char *lex_token_name(int kind);  /* "a name", "'('", "end of file" … */
const char *lex_kind_tag(int kind);    /* "IDENT", "LPAREN" … for token dumps */
const char *lex_token_text(int kind);  /* "(", "+=", "fn" …; NULL for a name, a number … */
/* The kind of the keyword spelled s[0..len), or TK_IDENT; *reserved says whether it is a
 * keyword everywhere or only at a statement's start. */
int lex_keyword(const char *s, uint32_t len, bool *reserved);

/* The token kinds in the order of tokens.def. lexer.re asserts that each is the TK_ number
 * Lemon gave it, parser.y that the grammar has LEX_TOKEN_COUNT terminals ($ included). */
enum {
#define TOKEN(kind, name) LEX_ORDER_##kind,
#include "tokens.def"
    LEX_TOKEN_COUNT
};
/* Validates the whole source (UTF-8, no NUL bytes); reports the first problem. */
bool lex_check_encoding(Nnl *nnl, Source *src);
/* Literal values; with `report`, bad escapes, overflow and overlong strings are diagnosed. */
char *lex_string_value(Nnl *nnl, Source *src, Token tok, Arena *arena, bool report,
                       uint32_t *out_len);
int64_t lex_int_value(Nnl *nnl, Source *src, Token tok, bool report);
double lex_float_value(Nnl *nnl, Source *src, Token tok, bool report);

/* ---- ast.c: the syntax tree ---- */

typedef enum {
    /* expressions */
    AST_INT, AST_FLOAT, AST_STRING, AST_BOOL, AST_NAME, AST_CALL, AST_LIST,
    AST_UNARY, AST_BINARY, AST_ARG,
    /* statements */
    AST_ASSIGN, AST_PARAM, AST_STATE, AST_RETURN,
    /* declarations */
    AST_IMPORT, AST_FN, AST_LOSS, AST_METRIC, AST_LAYER, AST_OPTIMIZER, AST_MODEL,
    AST_DATA, AST_TRAIN,
    /* parts */
    AST_FORMAL, AST_PROGRAM,
} AstKind;

typedef struct AstNode AstNode;

typedef struct {
    AstNode **items;
    int len, cap;
} AstList;

struct AstNode {
    AstKind kind;
    uint32_t off;        /* byte offset of the node's representative token */
    Source *src;
    int op;              /* TK_* of the operator: unary, binary, compound assignment */
    const char *name;    /* identifier; decoded string value; declaration name */
    uint32_t name_len;   /* byte length of name (strings may hold NUL) */
    int64_t ival;        /* AST_INT, AST_BOOL */
    double fval;         /* AST_FLOAT */
    AstNode *lhs, *rhs;  /* operands; ARG/FORMAL/ASSIGN/PARAM/STATE/RETURN value in rhs;
                            FN/LOSS/METRIC `= expr` body in rhs */
    AstList args;        /* CALL arguments (ARG nodes), LIST elements */
    AstList params;      /* declaration formals (FORMAL nodes) */
    AstList shape;       /* FORMAL/PARAM/STATE dims */
    AstList body;        /* block statements; PROGRAM declarations */
    AstList names;       /* DATA targets (NAME nodes) */
    int depth;           /* height of the expression tree below and including this node */
};

AstNode *ast_new(Arena *a, AstKind kind, Source *src, uint32_t off);
void ast_push(Arena *a, AstList *list, AstNode *node);
const char *ast_kind_name(AstKind kind);
void ast_dump(StrBuf *out, Nnl *nnl, const AstNode *node, int indent);

/* ---- parse.c and parser.y: tokens to AST ---- */

/* Parses one source into an AST_PROGRAM. Syntax errors are reported; the tree is returned
 * even when there were errors (callers check nnl_error_count). */
typedef void (*ParseTokenHook)(void *user, Source *src, Token tok);
AstNode *parse_source(Nnl *nnl, Source *src, ParseTokenHook hook, void *user);
/* Parses `key = value` statements (from --set) as a train block; NULL after errors. */
AstNode *parse_train_body(Nnl *nnl, Source *src);

/* The state shared by the token feeder (parse.c) and the grammar actions (parser.y). */
typedef struct {
    Nnl *nnl;
    Source *src;
    Arena *arena;
    AstNode *program;
    bool abort;          /* stop feeding: fatal error already reported */
    ParseTokenHook hook; /* sees every token the parser gets (dump --stage=tokens) */
    void *snap;          /* the parser stack before the current token (parser.y) */
    int snap_len, snap_cap;
    void *hook_user;
} ParseState;

/* Called from the grammar's %syntax_error with the parser and the offending token. */
void parse_syntax_error(ParseState *ps, void *parser, int major, Token tok);
/* Introspection of the Lemon parser (defined in parser.y's %code). */
int parse_stack_depth(void *parser);
void parse_statement_boundary(void *parser);
/* Copies the parser stack before a token is fed; the two queries below read the copy. */
void parse_snapshot(void *parser, ParseState *ps);
/* The innermost unclosed '(' '[' or '{': its kind and token. */
bool parse_innermost_open(ParseState *ps, Token *open);
/* Whether the parser, as it was before the current token, would shift `kind`. */
bool parse_accepts(ParseState *ps, int kind);
/* The token on top of the copied stack (TK_*). */
int parse_snapshot_top(const ParseState *ps);
int parse_token_count(void);
/* The parser Lemon generates from parser.y (prefix nnlParse, %extra_context ps). */
void *nnlParseAlloc(void *(*alloc)(size_t), ParseState *ps);
void nnlParseFree(void *parser, void (*dealloc)(void *));
void nnlParse(void *parser, int kind, Token tok);
void nnlParseTrace(FILE *out, char *prompt);

/* Grammar action helpers (parse.c): one call per reduce action. */
AstList parse_list1(ParseState *ps, AstNode *first);
AstNode *parse_leaf(ParseState *ps, AstKind kind, Token tok);
AstNode *parse_unary(ParseState *ps, Token op, AstNode *operand);
AstNode *parse_binary(ParseState *ps, Token op, AstNode *lhs, AstNode *rhs);
AstNode *parse_call(ParseState *ps, Token name, AstList args);
AstNode *parse_list(ParseState *ps, Token open, AstList elems);
AstNode *parse_arg(ParseState *ps, const Token *name, AstNode *value);
AstNode *parse_import(ParseState *ps, Token kw, Token path);
AstNode *parse_callable(ParseState *ps, Token kw, Token name, AstList formals,
                        const AstList *block, AstNode *const *expr);
AstNode *parse_data(ParseState *ps, Token kw, AstList names, AstNode *value);
AstNode *parse_train(ParseState *ps, Token kw, Token model, AstList block);
AstNode *parse_formal(ParseState *ps, Token name, AstList shape, AstNode *def);
AstNode *parse_assign(ParseState *ps, Token target, Token op, AstNode *value);
AstNode *parse_var(ParseState *ps, AstKind kind, Token kw, Token name, AstList shape,
                   AstNode *value);
AstNode *parse_return(ParseState *ps, Token kw, AstNode *value);

/* ---- ir.c: the tensor graph ---- */

typedef enum {
#define OP(name, text, arity, cls, kernel, memory, fn, how) OP_##name,
#include "ops.def"
#undef OP
    OP_COUNT
} Op;

typedef enum { OPC_LEAF, OPC_ELEM, OPC_REDUCE, OPC_MATMUL, OPC_GATHER, OPC_VIEW, OPC_CALL } OpClass;

/* The kernel that computes a node (ops.def's KERNEL; fuse.c, codegen_llvm.c). SUMOUT is no
 * op's: it adds a per-sample scalar over the batch into the entry's sums. NONE: no kernel
 * computes the op (a leaf in memory, a view). */
typedef enum {
    K_NONE = -1, K_ELEM, K_REDUCE, K_MATMUL, K_PICK, K_ARGMAX, K_SUMOUT, K_CALL
} KernelKind;

/* The arguments codegen passes to an OPC_CALL op's runtime routine (ops.def's ROUTINE),
 * after the operands' pointers:
 *   CONV_BIAS  the bias or NULL, the result, the activation (IrNode.index), B, then the
 *              geometry C, H, W, F, KH, KW, stride, pad (nnlrt_conv2d_f32)
 *   CONV       the result, B, C, H, W, F, KH, KW, stride, pad
 *   POOL       the result, planes (B times the image's leading dims), H, W, size, stride
 * C, H, W are the image's last three dims, F, KH, KW the filters' dims 0, 2, 3; aux packs
 * the last two numbers (ir.c). */
typedef enum { CALL_CONV_BIAS, CALL_CONV, CALL_POOL } OpCallSig;

enum { ROLE_NONE = -2, ROLE_OUT = -1, ROLE_IN0 = 0, ROLE_IN1 = 1 };

typedef struct {
    const char *symbol;   /* "conv2d": the routines nnlrt_conv2d_f32 and nnlrt_conv2d_f64 */
    OpCallSig sig;
    int image, weights, out; /* ROLE_*: an operand, the result (OUT), or none */
} OpCall;

enum { IR_MAX_RANK = 4 };

/* A shape as the model sees it: per-sample dims, plus a leading batch dimension of runtime
 * size B when `batched`. Rank 0 is a scalar. */
typedef struct {
    bool batched;
    int rank;
    int64_t dim[IR_MAX_RANK];
} Shape;

typedef enum { VAR_BATCH, VAR_STEP, VAR_EPOCH, VAR_TRAINING } VarKind; /* TRAINING: 1 in a
                                                                          training step, else 0 */
typedef enum { ARENA_PARAMS, ARENA_GRADS, ARENA_STATE } ArenaKind;

typedef struct IrNode IrNode;
struct IrNode {
    Op op;
    int id;
    Shape shape;
    IrNode *in[3];
    Source *src;        /* where in a script it comes from (NULL for generated nodes) */
    uint32_t off;
    double value;       /* CONST */
    int index;          /* PARAM: tensor; VAR: VarKind; ARENA: ArenaKind; CONV2D: the
                           activation its routine applies (fuse_conv_relu): 0 none, 1 relu */
    int aux;            /* ARENA_STATE: state number; SUM/RMAX: reduced dims (bit 0 the
                           batch, bit 1+i dim i); MATMUL: bit 0 transpose A, bit 1 B */
    bool needs_grad;    /* depends on a parameter */
    /* scheduling (fuse.c) */
    int uses;
    int buf;            /* buffer holding the value, or -1 when computed inline */
    int64_t buf_off;    /* element offset in that buffer */
};

typedef struct {
    const char *name;   /* "h1.W" */
    Shape shape;        /* unbatched */
    int64_t offset, size;
    Source *src;
    uint32_t off;       /* the param statement */
    IrNode *node;       /* the PARAM leaf */
    IrNode *init;       /* initial value, elementwise over the shape */
    IrNode *grad;       /* d(mean loss)/d(param), set by autodiff */
    bool buffer;        /* a running statistic: not trained; `update` is its new value */
    IrNode *update;
} IrParam;

typedef struct {
    Arena *arena;
    IrNode **nodes;     /* in creation order, which is a topological order */
    int nnodes, cap;
    IrParam *params;
    int nparams;
    int64_t nparam_elems;
    /* the training problem */
    IrNode *input, *target, *output;
    IrNode *loss;              /* per-sample loss, [B] */
    IrNode **metrics;          /* per-sample metrics, [B] each */
    const char **metric_names;
    int nmetrics;
    int target_kind;           /* NNLRT_TARGET_* */
    int64_t n_classes;
    /* the optimizer: new values of the parameter arena and of each state arena */
    IrNode *new_params;
    IrNode **new_states;
    double *state_init;
    int nstates;
} IrProgram;

int64_t shape_size(const Shape *s);            /* per-sample elements */
bool shape_equal(const Shape *a, const Shape *b);
const char *shape_str(Arena *a, const Shape *s); /* "[B, 784]", "[]" */
Shape shape_scalar(bool batched);
/* Broadcast of two shapes (numpy rules, aligned at the right); false if incompatible. */
bool shape_broadcast(const Shape *a, const Shape *b, Shape *out);

/* ops.def's columns */
OpClass ir_op_class(Op op);
const char *ir_op_name(Op op);
int ir_op_arity(Op op);
KernelKind ir_op_kernel(Op op);
bool ir_op_in_memory(Op op, int operand);  /* whether the operand must be in memory */
/* The op scripts call as the function `name` of one tensor (FN SCRIPT), or OP_COUNT. */
Op ir_op_function(const char *name);
bool ir_op_is_function(Op op);             /* FN SCRIPT */
const OpCall *ir_op_call(Op op);           /* the runtime routine of an OPC_CALL op, or NULL */
/* The tensor a ROLE_* of OpCall stands for in node n: an operand, n itself, or NULL. */
const IrNode *ir_call_role(const IrNode *n, int role);

double ir_fold_unary(Op op, double a);
double ir_fold_binary(Op op, double a, double b);
IrNode *ir_leaf(IrProgram *p, Op op, Shape shape);
IrNode *ir_const(IrProgram *p, double v);
IrNode *ir_var(IrProgram *p, VarKind v);
/* Elementwise ops; shapes must broadcast (callers check and report). Constant operands
 * fold, and a few rewrites keep the numerics stable (log of a sigmoid). */
IrNode *ir_unary(IrProgram *p, Op op, IrNode *a);
IrNode *ir_binary(IrProgram *p, Op op, IrNode *a, IrNode *b);
IrNode *ir_where(IrProgram *p, IrNode *c, IrNode *a, IrNode *b);
IrNode *ir_broadcast(IrProgram *p, IrNode *a, Shape to);
IrNode *ir_reduce(IrProgram *p, Op op, IrNode *a, int mask);  /* keeps reduced dims as 1 */
IrNode *ir_reshape(IrProgram *p, IrNode *a, Shape to);
IrNode *ir_matmul(IrProgram *p, IrNode *a, IrNode *b, bool ta, bool tb);
IrNode *ir_pick(IrProgram *p, IrNode *x, IrNode *index);
IrNode *ir_argmax(IrProgram *p, IrNode *x);
IrNode *ir_onehot(IrProgram *p, IrNode *index, int64_t n);
/* x with each element zeroed with probability prob during training (the rest scaled by
 * 1/(1 − prob)), x itself otherwise; the mask comes from the step's key and `salt` (the
 * node's own id when negative), so the gradient can draw the same one. */
IrNode *ir_dropout(IrProgram *p, IrNode *x, double prob, int salt);
/* Convolution of x[B, C, H, W] by w[F, C, KH, KW] (callers check the shapes fit). */
IrNode *ir_conv2d(IrProgram *p, IrNode *x, IrNode *w, int stride, int pad);
/* OP_MAXPOOL or OP_AVGPOOL over the last two dims of x (at least size each). */
IrNode *ir_pool(IrProgram *p, Op op, IrNode *x, int size, int stride);
/* Any runtime-routine op (OPC_CALL: the gradients OP_CONV2D_DX, _DW, OP_MAXPOOL_DX,
 * OP_AVGPOOL_DX, or a new routine's) of `shape`, which the caller computes; b may be NULL. */
IrNode *ir_call(IrProgram *p, Op op, Shape shape, IrNode *a, IrNode *b, int aux);
/* Sums all per-sample dims (and the batch when `batch`), giving a scalar per sample. */
IrNode *ir_sum_all(IrProgram *p, IrNode *a, bool batch);
/* The 2-D matrix an operand of MATMUL stands for: rows (-1 for B) and columns. */
void ir_matrix_dims(const IrNode *n, int64_t *rows, int64_t *cols);

void ir_dump_node(StrBuf *out, const IrNode *n);
/* Checks the invariants of every node (arity, shapes); reports an internal error. */
bool ir_verify(Nnl *nnl, const IrProgram *p);

/* ---- sema.c: names, arity, arguments, duplicates ---- */

/* The built-in functions and values: builtins.def's lines. */
typedef enum {
    BI_NONE = 0,
#define BUILTIN(id, ...) BI_##id,
#define VALUE(id, name)
#include "builtins.def"
#undef BUILTIN
#undef VALUE
    BI_COUNT,
    /* BI_OP + op: an op of ops.def that scripts call as a function of one tensor, `x`
     * (FN SCRIPT: exp, log, tanh, ...); sema_builtin finds them by their text */
    BI_OP = BI_COUNT
} Builtin;

typedef enum {
    BV_NONE = 0,
#define BUILTIN(id, ...)
#define VALUE(id, name) BV_##id,
#include "builtins.def"
#undef BUILTIN
#undef VALUE
    BV_COUNT
} BuiltinValue;

enum { BUILTIN_MAX_ARGS = 8 };

typedef struct {
    const char *name;
    int min_args, max_args;   /* positional and named together */
    const char *params[BUILTIN_MAX_ARGS]; /* parameter names, for named arguments */
} BuiltinInfo;

Builtin sema_builtin(const char *name);
const BuiltinInfo *sema_builtin_info(Builtin b);
BuiltinValue sema_builtin_value(const char *name);

NnlResult sema_check(Nnl *nnl);
/* The declaration a global name refers to, or NULL. */
AstNode *sema_lookup(Nnl *nnl, const char *name);
/* The names of the train keys (runtime/train_keys.def), NULL-terminated. */
extern const char *const sema_train_keys[];
/* The closest of `n` candidate names to `name`, or NULL if none is close. */
const char *sema_suggest(const char *name, const char *const *candidates, int n);

/* ---- lower.c and lower_*.c: a train declaration to a tensor-graph program ---- */

#include "nnlrt.h"

/* A data set a script declares: the runtime's description of it, where it is declared
 * (for messages) and, for a split part, the set it divides. Lowering fills in the spec
 * but for spec.parent; the driver hands the runtime a copy with the parent's index in its
 * list and script_dir made absolute. */
typedef struct ScriptData ScriptData;
struct ScriptData {
    NnlrtDataSpec spec;
    const ScriptData *parent;  /* split(...): the data set it divides */
    Source *src;               /* the call that describes it */
    uint32_t off;
};

/* The evaluated train declaration (and --set overrides): each key's value in the field
 * its row of runtime/train_keys.def names. */
typedef struct {
    AstNode *decl;             /* the train declaration */
    AstNode *model;
    ScriptData *data, *validate;
    AstNode *loss;             /* NAME or CALL of a loss */
    AstNode *optimizer;        /* NAME or CALL of an optimizer */
    AstNode **metrics;         /* NAMEs or CALLs of metrics or losses */
    int nmetrics;
    double clip_norm, clip_value, l1, l2;  /* 0: off */
    NnlrtTrainConfig config;   /* the run's settings (epochs, batch, ..., plot) */
    bool uses_epochs;          /* an expression read `epochs`: its value is compiled in */
    const AstNode *key_at[NNLRT_TRAIN_KEY_COUNT]; /* where each key was set, for messages */
    const char *target_held;   /* what the training data's targets hold, for messages:
                                * "the training data's targets (f.csv) are {0, 1, 2}" */
    int64_t target_classes;    /* K when those look like the class numbers 0..K-1, else 0 */
    int64_t n_train;           /* training samples (0: not read), for the steps of the run */
} TrainSpec;

/* Evaluates the keys of `train` (with `overrides`, parsed `--set` statements, winning). */
NnlResult lower_train_spec(Nnl *nnl, AstNode *train, AstList *overrides, TrainSpec *spec);
/* Where `spec` holds the value of train key `key` (an NnlrtTrainKeyId): the field its
 * row of train_keys.def names. */
const void *lower_train_field(const TrainSpec *spec, int key);
/* Builds the forward graph, the loss, the metrics and the optimizer update for `spec`
 * with float data of `x_size` inputs per sample (-1: as many as the model takes). */
NnlResult lower_program(Nnl *nnl, TrainSpec *spec, int64_t x_size, IrProgram *prog);
/* nnlc check: the forward pass of `model` on its declared input; NNL_EUSER after reporting. */
NnlResult lower_model_forward(Nnl *nnl, AstNode *model, IrProgram *prog);

/* ---- lower*.c, privately: what the lowering files share ----
 *
 * lower.c evaluates expressions, calls and parameters and builds the program;
 * lower_builtin.c the built-in functions, lower_data.c data declarations,
 * lower_train.c the train keys, lower_optim.c the optimizer's update. */

typedef enum { V_NONE, V_NUM, V_STR, V_LIST, V_FUNC, V_BUILTIN, V_TENSOR, V_DATA, V_ALL } VKind;

typedef struct Val Val;
struct Val {
    VKind kind;
    double num;
    const char *str;
    Val *items;
    int n;
    AstNode *decl;      /* V_FUNC */
    Builtin builtin;    /* V_BUILTIN */
    IrNode *t;          /* V_TENSOR */
    ScriptData *data;   /* V_DATA */
    Source *src;        /* where the value was made */
    uint32_t off;
};

/* What is being evaluated: globals (data, train keys, hyper-parameters), a model, a loss
 * or metric, an initializer, an optimizer body. */
typedef enum { MODE_GLOBAL, MODE_MODEL, MODE_OBJECTIVE, MODE_INIT, MODE_OPT } Mode;

enum { LOWER_MAX_DEPTH = 64, LOWER_MAX_NODES = 1 << 16 };

typedef struct {
    Nnl *nnl;
    IrProgram *p;
    TrainSpec *spec;
    Mode mode;
    int depth;              /* call depth, against runaway recursion */
    const AstNode *calls[LOWER_MAX_DEPTH]; /* the call sites being evaluated, outermost first */
    bool exploded;          /* the graph grew past LOWER_MAX_NODES (reported) */
    /* parameters: the prefix of the layer being evaluated, the name hint of the statement */
    const char *prefix;
    const char *hint;
    int last_matrix;        /* the last rank >= 2 parameter of the current layer, or -1 */
    /* initializers */
    Shape init_shape;
    double fan_in, fan_out;
    /* optimizer */
    IrNode *param_arena, *grad_arena;
    bool target_is_index;
    int64_t target_classes;
    const AstNode *target_use;
    ScriptData **data_cache_keys;
    int ndata_cache;
} Lower;

/* The names bound in a scope, innermost last. */
typedef struct {
    const char **names;
    Val *vals;
    int n, cap;
} Env;

static inline Val val_err(void) { return (Val){.kind = V_NONE}; }
static inline bool val_ok(Val v) { return v.kind != V_NONE; }
static inline bool val_is_numeric(Val v) { return v.kind == V_NUM || v.kind == V_TENSOR; }
static inline Val val_num(double x, const AstNode *at)
{
    return (Val){.kind = V_NUM, .num = x, .src = at ? at->src : NULL, .off = at ? at->off : 0};
}
Val val_tensor(IrNode *t, const AstNode *at);
IrNode *val_node(Lower *L, Val v);            /* a tensor, or a number as a constant */
const char *val_desc(Lower *L, Val v);        /* "a tensor [B, 3]", "the number 2" */
const char *val_origin(Lower *L, Val v);      /* "[B, 3] (from h at model.nnl:4:5)" */

void env_bind(Env *e, const char *name, Val v);
Val *env_find(Env *e, const char *name);
void env_free(Env *e);

/* An error at `at`; inside the standard library, a note at the user's call into it. */
void lower_error(Lower *L, const AstNode *at, const char *fmt, ...) NNL_PRINTF(3, 4);
bool lower_want_tensor(Lower *L, AstNode *at, Val v, const char *what);
bool lower_want_int(Lower *L, AstNode *at, Val v, const char *what, int64_t lo, int64_t *out);
bool lower_want_str(Lower *L, AstNode *at, Val v, const char *what);

/* lower.c */
Val lower_expr(Lower *L, Env *e, AstNode *x);
Val lower_builtin_value(Lower *L, AstNode *at, BuiltinValue bv);
Op lower_token_op(int tk);                    /* the Op of a binary or compound-assign TK_ */
Val lower_binary(Lower *L, AstNode *at, Op op, Val a, Val b);
Val lower_unary_op(Lower *L, AstNode *at, Op op, Val a);
/* Binds the formals of `decl`: `pre` values first (the model output and target of a loss),
 * then the call's arguments, then defaults, evaluated in the callee's environment. */
bool lower_bind_args(Lower *L, Env *callee, Env *caller, AstNode *decl, AstNode *call,
                     Val *pre, int npre);
Val lower_call_decl(Lower *L, AstNode *decl, AstNode *call, Env *caller, Val *pre, int npre);
/* lower_builtin.c */
Val lower_builtin(Lower *L, Env *e, AstNode *call, Builtin b);
/* lower_data.c: a data declaration, evaluated once per name; csv, idx, npy and split */
Val lower_data_decl(Lower *L, AstNode *decl, const char *name);
Val lower_data_call(Lower *L, AstNode *call, Builtin b, Val *a, bool *given);
/* lower_optim.c: the optimizer's new parameters and states (false after reporting) */
bool lower_optimizer(Lower *L);

/* ---- autodiff.c ---- */

void ad_backward(IrProgram *p);

/* ---- fuse.c: which nodes live in memory, and the kernels of each entry point ---- */

enum { BUF_STATE = 1000,      /* buffer ids from here on are optimizer state arenas */
       BUF_OUT = 999 };      /* the predict entry's output argument */

typedef struct {
    IrNode *node;
    int buf;          /* destination buffer and element offset */
    int64_t off;
} KernelOut;

typedef struct {
    KernelKind kind;
    IrNode *node;     /* what is computed (REDUCE, MATMUL, PICK, ARGMAX, SUMOUT) */
    KernelOut *outs;  /* ELEM: one loop computes every output, sharing subexpressions;
                       * REDUCE: empty, or the reductions of one loop (node the first) */
    int nouts;
    KernelOut *reds;  /* ELEM: reductions over the same space in the same loop */
    int nreds;
    int sum_index;    /* SUMOUT: sums[sum_index] += the sum of node over the batch */
} Kernel;

typedef struct {
    const char *name;
    Kernel *kernels;
    int nkernels;
} Entry;

enum { ENTRY_INIT, ENTRY_GRAD, ENTRY_EVAL, ENTRY_UPDATE, ENTRY_PREDICT, ENTRY_COUNT };

typedef struct {
    Entry entries[ENTRY_COUNT];
    int nbufs;               /* including the NNLRT_BUF_FIRST fixed ones */
    int64_t max_batch;       /* the largest B of a training step */
    int64_t max_batch_eval;  /* the largest B of an evaluation or a prediction */
    bool predict;            /* generate code for the predict entry (it is always planned) */
    int64_t *buf_elems;      /* per sample when batched, else in all */
    bool *buf_batched;
} Plan;

void fuse_plan(Nnl *nnl, IrProgram *p, Plan *plan);
void fuse_dump(StrBuf *out, const IrProgram *p, const Plan *plan);
void fuse_free(Plan *plan);

/* ---- summary.c: nnlc check --summary ---- */

/* The model's input, output, layers and parameters, FLOPs per sample (the forward graph
 * is nodes [0, forward)), and the runtime's memory for steps of `batch` samples. */
void summary_write(StrBuf *b, const TrainSpec *spec, const IrProgram *p, const Plan *plan,
                   int forward, int64_t batch, int64_t samples, int elem_size);

/* ---- codegen_llvm.c, codegen_elem.c (their shared types: codegen_int.h) and jit.c ---- */

typedef struct Jit Jit;
typedef struct {
    NnlrtInitFn init;
    NnlrtGradFn grad;
    NnlrtEvalFn eval;
    NnlrtUpdateFn update;
    NnlrtPredictFn predict;
} JitEntries;

/* Generates, verifies and optimizes (default<O3>, host CPU) the module for `plan`; with
 * `dump`, writes its text. Then hands it to the JIT and looks the entry points up. */
NnlResult cg_compile(Nnl *nnl, IrProgram *p, Plan *plan, int elem_size, StrBuf *dump,
                     Jit **jit, JitEntries *entries);
void jit_free(Jit *jit);

/* The module for `plan` in the LLVM context `ctx` (LLVMModuleRef, LLVMContextRef: the
 * LLVM C API's types, named by their struct tags so that this header needs no LLVM
 * header); NULL after reporting an internal error. cg_compile and cg_emit_object (jit.c)
 * optimize and compile it. */
struct LLVMOpaqueModule;
struct LLVMOpaqueContext;
struct LLVMOpaqueModule *cg_module(Nnl *nnl, IrProgram *p, Plan *plan, int elem_size,
                                   struct LLVMOpaqueContext *ctx);

/* The same module, optimized and compiled for `cpu` ("native": the host's CPU and
 * features, exactly as cg_compile; else an LLVM CPU name such as "x86-64-v3", with its
 * own features only) into the object file `path`, which defines nnl_init, nnl_grad,
 * nnl_eval and nnl_update; with `lib_prefix`, only PREFIX_nnl_predict (hidden), the
 * model's inference for a library. Sets *cpu_name (the CPU's name: the host's for "native") and
 * *features (LLVM's "+avx2,+fma,..." list, "" for a named CPU), in the context's arena. */
NnlResult cg_emit_object(Nnl *nnl, IrProgram *p, Plan *plan, int elem_size, const char *cpu,
                         const char *path, const char *lib_prefix, const char **cpu_name,
                         const char **features);

/* ---- driver.c: the pipeline ---- */

/* nnl_run hands the stages (and aot.c) its NnlRunOptions completed: out and cpu set,
 * float64 set for a gradient check, verbose only where a run or a build reports stages. */

/* The size of a float the model computes in: 8 with --float64 and for gradient checks. */
static inline int driver_elem_size(const NnlRunOptions *opt)
{
    return opt->float64 ? 8 : 4;
}

/* ---- aot.c: standalone trainers (nnlc build) ----
 *
 * What the driver hands over: the model as the runtime sees it, its data sets, the
 * settings of the train block, and the compiled program. */
typedef struct {
    const TrainSpec *spec;
    IrProgram *prog;
    Plan *plan;
    const NnlrtModel *model;        /* entry points NULL: they are in the object file */
    const NnlrtDataSpec *data;
    int ndata, train_data, val_data;
    const NnlrtTrainConfig *config;
    const double *x_mean, *x_sd;    /* --lib: the training inputs' standardization, or NULL */
    double x_scale;                 /* --lib: the training inputs' scale */
} AotInput;

/* Writes the trainer opt->output for opt->cpu: the object file, a C file with the
 * NnlrtProgram and main, compiled and linked with cc against libnnlrt.a. */
NnlResult aot_build(Nnl *nnl, const NnlRunOptions *opt, const AotInput *in);
/* Writes the library opt->output + ".o" and ".h": the predict entry as NAME_nnl_predict
 * with runtime/nnlrt_lib.c around it (NAME_load, NAME_set_params, NAME_predict,
 * NAME_error), NAME the last component of opt->output. */
NnlResult aot_build_lib(Nnl *nnl, const NnlRunOptions *opt, const AotInput *in);

/* ---- context (nnl.c) ---- */

/* The standard library, stdlib/ *.nnl, compiled in: stdlib_embed.c, which
 * cmake/embed.cmake generates at build time. */
typedef struct {
    const char *name;
    const char *text;
    size_t len;
} EmbeddedFile;
extern const EmbeddedFile nnl_stdlib_files[];
extern const int nnl_stdlib_count;

/* A source that is not a script: command-line text parsed for messages with positions. */
Source *nnl_text_source(Nnl *nnl, const char *name, const char *text);

struct Nnl {
    Arena arena;
    NnlDiagFn diag_fn;
    void *diag_user;
    int nerrors;
    bool stopped;
    /* diag.c: the errors and warnings shown, so that each is shown once (a data set
     * evaluated for two names, a stage that runs twice); the notes of one not shown again
     * are dropped; `diag_context` tells apart the same message reached from two places
     * (an error inside the standard library, from two calls in the script) */
    struct DiagShown *diag_shown;
    bool diag_skip_notes;
    const void *diag_context;
    Source **sources;
    int nsources;
    AstNode **programs;  /* parallel to sources once parsed */
    bool parsed;
    bool checked;        /* sema_check has run */
    /* global declarations by name (sema.c), user scripts and stdlib */
    AstNode **globals;
    const char **global_names;
    int nglobals;
};

#endif
