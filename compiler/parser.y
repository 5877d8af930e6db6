/* parser.y — the nnl grammar (Lemon). Zero conflicts: lemon fails the build otherwise.
 *
 * The token feeder in parse.c turns line breaks into NEWLINE only where a statement can
 * end, drops them inside ( ) and [ ], and turns the contextual keywords into their own
 * tokens at the start of a statement. Actions are one call long; the helpers live in
 * parse.c. docs/language.md has the same grammar in EBNF: change them together.
 */

%name nnlParse
%token_prefix TK_
%token_type {Token}
%default_type {AstNode *}
%extra_context {ParseState *ps}
%stack_size 2000
%start_symbol program

%include {
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include "nnlc_int.h"
}

%syntax_error {
    parse_syntax_error(ps, yypParser, yymajor, TOKEN);
}

%stack_overflow {
    ps->abort = true;
    diag_error(ps->nnl, ps->src, ps->src->len, "internal error: parser stack overflow");
}

/* Every terminal, in one place; their order is the TK_ numbering, and tokens.def lists
 * the same names in the same order (lexer.re and this file check it). */
%token NEWLINE IMPORT FN LOSS METRIC LAYER OPTIMIZER MODEL DATA TRAIN PARAM STATE RETURN
       TRUE FALSE IDENT INT FLOAT STRING LPAREN RPAREN LBRACKET RBRACKET LBRACE RBRACE
       COMMA ASSIGN PLUSEQ MINUSEQ STAREQ SLASHEQ EQ NE LT LE GT GE PLUS MINUS STAR
       SLASH AT CARET.

%type decls {AstList}
%type formals {AstList}
%type formal_seq {AstList}
%type shape_opt {AstList}
%type block {AstList}
%type stmts {AstList}
%type names {AstList}
%type args {AstList}
%type arg_seq {AstList}
%type elems {AstList}
%type expr_seq {AstList}
%type fn_kind {Token}
%type block_kind {Token}
%type compound_op {Token}
%type cmp_op {Token}

/* program ::= { decl NEWLINE }
 * A declaration ends with NEWLINE (the feeder supplies one at the end of the file). As a
 * terminator rather than a separator it keeps Lemon's default reductions from closing the
 * list early, so error recovery resumes at the next line. */
program ::= decls(L).                       { ps->program->body = L; }

decls(A) ::= .                              { A = (AstList){0}; }
decls(A) ::= decls(L) decl(D) NEWLINE.      { A = L; ast_push(ps->arena, &A, D); }

/* import "name" */
decl(A) ::= IMPORT(K) STRING(S).            { A = parse_import(ps, K, S); }
/* fn|loss|metric NAME ( formals ) ( = expr | block ) */
decl(A) ::= fn_kind(K) IDENT(N) LPAREN formals(P) RPAREN ASSIGN expr(E).
                                            { A = parse_callable(ps, K, N, P, NULL, &E); }
decl(A) ::= fn_kind(K) IDENT(N) LPAREN formals(P) RPAREN block(B).
                                            { A = parse_callable(ps, K, N, P, &B, NULL); }
/* layer|optimizer|model NAME ( formals ) block */
decl(A) ::= block_kind(K) IDENT(N) LPAREN formals(P) RPAREN block(B).
                                            { A = parse_callable(ps, K, N, P, &B, NULL); }
/* data NAME { , NAME } = expr */
decl(A) ::= DATA(K) names(L) ASSIGN expr(E). { A = parse_data(ps, K, L, E); }
/* train MODEL block */
decl(A) ::= TRAIN(K) IDENT(N) block(B).     { A = parse_train(ps, K, N, B); }
/* After a mistake in a declaration's header, its block is still parsed (and checked),
 * rather than read as declarations. */
decl(A) ::= error.                          { A = NULL; }
decl(A) ::= error block.                    { A = NULL; }

fn_kind(A) ::= FN(K).                       { A = K; }
fn_kind(A) ::= LOSS(K).                        { A = K; }
fn_kind(A) ::= METRIC(K).                      { A = K; }
block_kind(A) ::= LAYER(K).                    { A = K; }
block_kind(A) ::= OPTIMIZER(K).                { A = K; }
block_kind(A) ::= MODEL(K).                    { A = K; }

names(A) ::= IDENT(N).                      { A = parse_list1(ps, parse_leaf(ps, AST_NAME, N)); }
names(A) ::= names(L) COMMA IDENT(N).       { A = L; ast_push(ps->arena, &A, parse_leaf(ps, AST_NAME, N)); }

/* formal ::= IDENT [ '[' expr { , expr } ']' ] [ = expr ] */
formals(A) ::= .                            { A = (AstList){0}; }
formals(A) ::= formal_seq(L).               { A = L; }
formals(A) ::= formal_seq(L) COMMA.         { A = L; }
formal_seq(A) ::= formal(F).                { A = parse_list1(ps, F); }
formal_seq(A) ::= formal_seq(L) COMMA formal(F). { A = L; ast_push(ps->arena, &A, F); }
formal(A) ::= IDENT(N) shape_opt(S).        { A = parse_formal(ps, N, S, NULL); }
formal(A) ::= IDENT(N) shape_opt(S) ASSIGN expr(E). { A = parse_formal(ps, N, S, E); }

shape_opt(A) ::= .                          { A = (AstList){0}; }
shape_opt(A) ::= LBRACKET expr_seq(L) RBRACKET. { A = L; }

/* block ::= '{' { stmt NEWLINE } [ stmt ] '}' */
block(A) ::= LBRACE stmts(L) RBRACE.        { A = L; }
block(A) ::= LBRACE stmts(L) stmt(S) RBRACE. { A = L; ast_push(ps->arena, &A, S); }
stmts(A) ::= .                              { A = (AstList){0}; }
stmts(A) ::= stmts(L) stmt(S) NEWLINE.      { A = L; ast_push(ps->arena, &A, S); }

stmt(A) ::= IDENT(N) ASSIGN(O) expr(E).     { A = parse_assign(ps, N, O, E); }
stmt(A) ::= IDENT(N) compound_op(O) expr(E). { A = parse_assign(ps, N, O, E); }
stmt(A) ::= PARAM(K) IDENT(N) shape_opt(S) ASSIGN expr(E). { A = parse_var(ps, AST_PARAM, K, N, S, E); }
stmt(A) ::= STATE(K) IDENT(N) shape_opt(S) ASSIGN expr(E). { A = parse_var(ps, AST_STATE, K, N, S, E); }
stmt(A) ::= RETURN(K) expr(E).              { A = parse_return(ps, K, E); }
stmt(A) ::= error.                          { A = NULL; }

compound_op(A) ::= PLUSEQ(O).               { A = O; }
compound_op(A) ::= MINUSEQ(O).              { A = O; }
compound_op(A) ::= STAREQ(O).               { A = O; }
compound_op(A) ::= SLASHEQ(O).              { A = O; }

/* Expressions, loosest first:
 *   comparison  == != < <= > >=   (non-associative)
 *   additive    + -               (left)
 *   product     * / @             (left)
 *   unary       - +               (prefix)
 *   power       ^                 (right; binds tighter than unary minus: -x^2 is -(x^2))
 */
expr(A) ::= sum(E).                         { A = E; }
expr(A) ::= sum(L) cmp_op(O) sum(R).        { A = parse_binary(ps, O, L, R); }
cmp_op(A) ::= EQ(O).                        { A = O; }
cmp_op(A) ::= NE(O).                        { A = O; }
cmp_op(A) ::= LT(O).                        { A = O; }
cmp_op(A) ::= LE(O).                        { A = O; }
cmp_op(A) ::= GT(O).                        { A = O; }
cmp_op(A) ::= GE(O).                        { A = O; }

sum(A) ::= term(E).                         { A = E; }
sum(A) ::= sum(L) PLUS(O) term(R).          { A = parse_binary(ps, O, L, R); }
sum(A) ::= sum(L) MINUS(O) term(R).         { A = parse_binary(ps, O, L, R); }

term(A) ::= unary(E).                       { A = E; }
term(A) ::= term(L) STAR(O) unary(R).       { A = parse_binary(ps, O, L, R); }
term(A) ::= term(L) SLASH(O) unary(R).      { A = parse_binary(ps, O, L, R); }
term(A) ::= term(L) AT(O) unary(R).         { A = parse_binary(ps, O, L, R); }

unary(A) ::= power(E).                      { A = E; }
unary(A) ::= MINUS(O) unary(E).             { A = parse_unary(ps, O, E); }
unary(A) ::= PLUS(O) unary(E).              { A = parse_unary(ps, O, E); }

power(A) ::= primary(E).                    { A = E; }
power(A) ::= primary(L) CARET(O) unary(R).  { A = parse_binary(ps, O, L, R); }

primary(A) ::= INT(T).                      { A = parse_leaf(ps, AST_INT, T); }
primary(A) ::= FLOAT(T).                    { A = parse_leaf(ps, AST_FLOAT, T); }
primary(A) ::= STRING(T).                   { A = parse_leaf(ps, AST_STRING, T); }
primary(A) ::= TRUE(T).                     { A = parse_leaf(ps, AST_BOOL, T); }
primary(A) ::= FALSE(T).                    { A = parse_leaf(ps, AST_BOOL, T); }
primary(A) ::= IDENT(T).                    { A = parse_leaf(ps, AST_NAME, T); }
primary(A) ::= IDENT(N) LPAREN args(L) RPAREN. { A = parse_call(ps, N, L); }
primary(A) ::= LPAREN expr(E) RPAREN.       { A = E; }
primary(A) ::= LBRACKET(T) elems(L) RBRACKET. { A = parse_list(ps, T, L); }

/* args ::= [ arg { , arg } [ , ] ];  arg ::= [ IDENT = ] expr */
args(A) ::= .                               { A = (AstList){0}; }
args(A) ::= arg_seq(L).                     { A = L; }
args(A) ::= arg_seq(L) COMMA.               { A = L; }
arg_seq(A) ::= arg(E).                      { A = parse_list1(ps, E); }
arg_seq(A) ::= arg_seq(L) COMMA arg(E).     { A = L; ast_push(ps->arena, &A, E); }
arg(A) ::= expr(E).                         { A = parse_arg(ps, NULL, E); }
arg(A) ::= IDENT(N) ASSIGN expr(E).         { A = parse_arg(ps, &N, E); }

elems(A) ::= .                              { A = (AstList){0}; }
elems(A) ::= expr_seq(L).                   { A = L; }
elems(A) ::= expr_seq(L) COMMA.             { A = L; }
expr_seq(A) ::= expr(E).                    { A = parse_list1(ps, E); }
expr_seq(A) ::= expr_seq(L) COMMA expr(E).  { A = L; ast_push(ps->arena, &A, E); }

%code {
/* ---- introspection of the parser, for messages and the token feeder ---- */

/* Lemon stays quiet until three tokens were shifted after an error; nnl statements are
 * shorter than that, so a shifted NEWLINE (a statement boundary) ends the quiet period. */
void parse_statement_boundary(void *parser)
{
    yyParser *p = parser;
    if (p->yytos->major == TK_NEWLINE)
        p->yyerrcnt = -1;
}

int parse_stack_depth(void *parser)
{
    yyParser *p = parser;
    return (int)(p->yytos - p->yystack);
}

/* Lemon makes default reductions before it detects an error, so by then the stack has
 * lost the states that knew what could follow. The feeder keeps a copy of the stack as
 * it was before each token; messages are worked out from that copy. */
void parse_snapshot(void *parser, ParseState *ps)
{
    yyParser *p = parser;
    int n = (int)(p->yytos - p->yystack) + 1;
    if (n > ps->snap_cap) {
        ps->snap_cap = n * 2;
        ps->snap = nnl_realloc(ps->snap, sizeof(yyStackEntry) * (size_t)ps->snap_cap);
    }
    memcpy(ps->snap, p->yystack, sizeof(yyStackEntry) * (size_t)n);
    ps->snap_len = n;
}

bool parse_innermost_open(ParseState *ps, Token *open)
{
    /* A closer is shifted before the construct it ends is reduced, so walking down the
     * stack, each closer cancels the next opener. */
    const yyStackEntry *stack = ps->snap;
    int closed = 0;
    for (int i = ps->snap_len - 1; i > 0; i--) {
        int major = stack[i].major;
        if (major == TK_RPAREN || major == TK_RBRACKET || major == TK_RBRACE) {
            closed++;
        } else if (major == TK_LPAREN || major == TK_LBRACKET || major == TK_LBRACE) {
            if (closed > 0) {
                closed--;
                continue;
            }
            *open = stack[i].minor.yy0;
            open->kind = major;
            return true;
        }
    }
    return false;
}

/* Runs the automaton on a copy of the snapshot: would `kind` be shifted? */
bool parse_accepts(ParseState *ps, int kind)
{
    const yyStackEntry *stack = ps->snap;
    int n = ps->snap_len, cap = n + 1;
    YYACTIONTYPE *st = nnl_malloc(sizeof(YYACTIONTYPE) * (size_t)cap);
    for (int i = 0; i < n; i++)
        st[i] = stack[i].stateno;
    int top = n - 1;
    bool ok = false;
    for (int guard = 0; guard < 100000; guard++) {
        YYACTIONTYPE act = yy_find_shift_action((YYCODETYPE)kind, st[top]);
        if (act >= YY_MIN_REDUCE) {
            int rule = act - YY_MIN_REDUCE;
            int size = yyRuleInfoNRhs[rule];
            if (top + size < 0)
                break;
            YYACTIONTYPE go = yy_find_reduce_action(st[top + size], yyRuleInfoLhs[rule]);
            top += size + 1;
            if (top >= cap) {
                cap = top + 1;
                st = nnl_realloc(st, sizeof(YYACTIONTYPE) * (size_t)cap);
            }
            st[top] = go;
            continue;
        }
        ok = act <= YY_MAX_SHIFTREDUCE || act == YY_ACCEPT_ACTION;
        break;
    }
    nnl_dealloc(st);
    return ok;
}

/* The kind of the symbol on top of the snapshot: the token fed last, unless reduced. */
int parse_snapshot_top(const ParseState *ps)
{
    const yyStackEntry *stack = ps->snap;
    return ps->snap_len > 0 ? stack[ps->snap_len - 1].major : TK_EOF;
}

int parse_token_count(void)
{
    return YYNTOKEN;
}

/* tokens.def lists every terminal of the %token line (lexer.re checks names and order). */
_Static_assert(YYNTOKEN == LEX_TOKEN_COUNT,
               "parser.y's %token line and tokens.def have different numbers of tokens");
}
