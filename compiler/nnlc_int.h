/* nnlc_int.h — the one internal header of libnnlc, a section per file. */
#ifndef NNLC_INT_H
#define NNLC_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nnlc.h"

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
 * "out of memory" and exits with NNL_EUSAGE's sibling code 70-free path (see util.c). */
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

/* Growable text buffer for building messages and dumps. */
typedef struct {
    char *data;
    size_t len, cap;
} StrBuf;

void sb_putc(StrBuf *b, char c);
void sb_puts(StrBuf *b, const char *s);
void sb_putn(StrBuf *b, const char *s, size_t n);
void sb_printf(StrBuf *b, const char *fmt, ...) NNL_PRINTF(2, 3);
void sb_free(StrBuf *b);

/* Number of bytes of the UTF-8 sequence starting at s (at most n), or 0 if invalid. */
int utf8_seq_len(const unsigned char *s, size_t n);

/* ---- source.c: loaded scripts and positions ---- */

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

/* ---- lex.c (generated from lexer.re): bytes to tokens ---- */

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
int parse_token_count(void);

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

/* ---- context (nnl.c) ---- */

struct Nnl {
    Arena arena;
    NnlDiagFn diag_fn;
    void *diag_user;
    int nerrors;
    bool stopped;
    Source **sources;
    int nsources;
    AstNode **programs;  /* parallel to sources once parsed */
    bool parsed;
};

#endif
