/* lexer.re — bytes to tokens (re2c).
 *
 * The rules only classify; values (numbers, string escapes) are checked by the helpers
 * below, which the parser calls again to build literals. The buffer ends in a NUL
 * sentinel (re2c:eof) and lex_check_encoding has already refused NUL bytes and invalid
 * UTF-8, so every non-ASCII byte the rules meet starts a well-formed character.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnlc_int.h"
#include "parser.h"

void lex_init(Lexer *lx, Nnl *nnl, Source *src)
{
    lx->nnl = nnl;
    lx->src = src;
    lx->cur = (const unsigned char *)src->text;
    lx->lim = lx->cur + src->len;
    if (src->len >= 3 && memcmp(lx->cur, "\xEF\xBB\xBF", 3) == 0)
        lx->cur += 3; /* a UTF-8 byte-order mark, as some editors write */
    lx->mar = lx->cur;
    lx->semicolon = false;
}

bool lex_check_encoding(Nnl *nnl, Source *src)
{
    const unsigned char *s = (const unsigned char *)src->text;
    for (uint32_t i = 0; i < src->len;) {
        if (s[i] == 0) {
            diag_error(nnl, src, i, "NUL byte in source file");
            return false;
        }
        int n = utf8_seq_len(s + i, src->len - i);
        if (n == 0) {
            diag_error(nnl, src, i, "invalid UTF-8 byte 0x%02X in source file", s[i]);
            return false;
        }
        i += (uint32_t)n;
    }
    return true;
}

static uint32_t lex_off(const Lexer *lx, const unsigned char *p)
{
    return (uint32_t)(p - (const unsigned char *)lx->src->text);
}

/* Reports a character that cannot start a token; returns the bytes to skip. */
static uint32_t lex_bad_char(Lexer *lx, const unsigned char *p)
{
    uint32_t off = lex_off(lx, p);
    if (*p >= 0x80) {
        int n = utf8_seq_len(p, (size_t)(lx->lim - p));
        unsigned cp = *p & (0xFF >> (n + 1));
        for (int i = 1; i < n; i++)
            cp = (cp << 6) | (p[i] & 0x3F);
        diag_error(lx->nnl, lx->src, off, "unexpected character '%.*s' (U+%04X)", n,
                   (const char *)p, cp);
        return (uint32_t)n;
    }
    if (*p >= 0x20 && *p < 0x7F)
        diag_error(lx->nnl, lx->src, off, "unexpected character '%c'", *p);
    else
        diag_error(lx->nnl, lx->src, off, "unexpected control character U+%04X", *p);
    return 1;
}

/* The value of the string literal `tok` (quotes included in tok), escapes decoded.
 * With `report`, bad escapes and overlong strings are diagnosed. */
char *lex_string_value(Nnl *nnl, Source *src, Token tok, Arena *arena, bool report,
                       uint32_t *out_len)
{
    const char *s = src->text + tok.off + 1;
    uint32_t n = tok.len >= 2 ? tok.len - 2 : 0;
    char *out = arena ? arena_alloc(arena, n + 1) : NULL;
    uint32_t len = 0;
    for (uint32_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            uint32_t at = tok.off + 1 + i;
            char e = s[++i];
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case '0': c = '\0'; break;
            case '\\': c = '\\'; break;
            case '"': c = '"'; break;
            default:
                if (report) {
                    int w = utf8_seq_len((const unsigned char *)s + i, n - i);
                    diag_error(nnl, src, at,
                               "unknown escape sequence '\\%.*s' in string (known: \\n \\t \\r "
                               "\\0 \\\\ \\\")", w ? w : 1, s + i);
                }
                c = e;
            }
        }
        if (out)
            out[len] = c;
        len++;
    }
    if (report && len > NNL_MAX_STRING)
        diag_error(nnl, src, tok.off, "string literal is too long (%u bytes; the limit is %d)",
                   len, NNL_MAX_STRING);
    if (out_len)
        *out_len = len;
    return out;
}

/* The value of a TK_INT literal; with `report`, overflow is diagnosed. */
int64_t lex_int_value(Nnl *nnl, Source *src, Token tok, bool report)
{
    const char *s = src->text + tok.off;
    int64_t v = 0;
    for (uint32_t i = 0; i < tok.len; i++) {
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10) {
            if (report)
                diag_error(nnl, src, tok.off,
                           "integer literal '%.*s' is too large (the maximum is %lld)",
                           (int)tok.len, s, (long long)INT64_MAX);
            return INT64_MAX;
        }
        v = v * 10 + d;
    }
    return v;
}

/* The value of a TK_FLOAT literal; with `report`, overflow and underflow are diagnosed. */
double lex_float_value(Nnl *nnl, Source *src, Token tok, bool report)
{
    char buf[NNL_MAX_NUMBER + 1];
    uint32_t n = tok.len < NNL_MAX_NUMBER ? tok.len : NNL_MAX_NUMBER;
    memcpy(buf, src->text + tok.off, n);
    buf[n] = 0;
    errno = 0;
    double v = strtod(buf, NULL);
    bool nonzero = strpbrk(buf, "123456789") && strcspn(buf, "123456789") < strcspn(buf, "eE");
    if (report && isinf(v))
        diag_error(nnl, src, tok.off, "number '%s' is too large for a 64-bit float", buf);
    else if (report && v == 0 && nonzero)
        diag_error(nnl, src, tok.off, "number '%s' is too small: it would be rounded to 0", buf);
    return v;
}

/* Checks the token just scanned for the limits and values the rules cannot see. */
static void lex_check_token(Lexer *lx, Token t)
{
    Nnl *nnl = lx->nnl;
    switch (t.kind) {
    case TK_IDENT:
        if (t.len > NNL_MAX_IDENT)
            diag_error(nnl, lx->src, t.off, "identifier is too long (%u bytes; the limit is %d)",
                       t.len, NNL_MAX_IDENT);
        break;
    case TK_INT:
    case TK_FLOAT:
        if (t.len > NNL_MAX_NUMBER)
            diag_error(nnl, lx->src, t.off,
                       "number literal is too long (%u characters; the limit is %d)", t.len,
                       NNL_MAX_NUMBER);
        else if (t.kind == TK_INT)
            lex_int_value(nnl, lx->src, t, true);
        else
            lex_float_value(nnl, lx->src, t, true);
        break;
    case TK_STRING:
        lex_string_value(nnl, lx->src, t, NULL, true, NULL);
        break;
    }
}

/*!re2c
    re2c:define:YYCTYPE = "unsigned char";
    re2c:define:YYCURSOR = "lx->cur";
    re2c:define:YYMARKER = "lx->mar";
    re2c:define:YYLIMIT = "lx->lim";
    re2c:yyfill:enable = 0;
    re2c:eof = 0;

    digit  = [0-9];
    alpha  = [a-zA-Z_];
    ident  = alpha (alpha | digit)*;
    exp    = [eE] [+-]? digit+;
    int    = digit+;
    float  = digit+ "." digit+ exp? | digit+ exp | "." digit+ exp?;
    strch  = [^"\\\n\x00] | "\\" [^\n\x00];
*/

Token lex_next(Lexer *lx)
{
    for (;;) {
        const unsigned char *start = lx->cur;
        Token t = {TK_EOF, lex_off(lx, start), 0};
#define TOK(k) do { t.kind = (k); goto done; } while (0)
    /*!re2c
        $                  { t.len = 0; return t; }
        [ \t\r\f\v]+       { continue; }
        "#" [^\n\x00]*     { continue; }
        "\n"               { lx->semicolon = false; TOK(TK_NEWLINE); }
        ";"                { lx->semicolon = true; TOK(TK_NEWLINE); }

        ident              { TOK(TK_IDENT); }
        float              { TOK(TK_FLOAT); }
        int                { TOK(TK_INT); }
        (digit+ ("." digit+)? | "." digit+) [eE] [+-]? {
            diag_error(lx->nnl, lx->src, t.off, "exponent has no digits in number '%.*s'",
                       (int)(lx->cur - start), (const char *)start);
            TOK(TK_FLOAT);
        }
        (int | float) (alpha | digit)+ {
            diag_error(lx->nnl, lx->src, t.off, "invalid number '%.*s'",
                       (int)(lx->cur - start), (const char *)start);
            TOK(TK_FLOAT);
        }
        digit+ "." {
            diag_error(lx->nnl, lx->src, t.off,
                       "a digit must follow the decimal point in '%.*s' (write '%.*s0')",
                       (int)(lx->cur - start), (const char *)start,
                       (int)(lx->cur - start), (const char *)start);
            TOK(TK_FLOAT);
        }
        ["] strch* ["]     { TOK(TK_STRING); }
        ["] strch* "\\"?   {
            diag_error(lx->nnl, lx->src, t.off, "unterminated string (a string ends with '\"' "
                       "on the line where it starts)");
            TOK(TK_STRING);
        }

        "("  { TOK(TK_LPAREN); }
        ")"  { TOK(TK_RPAREN); }
        "["  { TOK(TK_LBRACKET); }
        "]"  { TOK(TK_RBRACKET); }
        "{"  { TOK(TK_LBRACE); }
        "}"  { TOK(TK_RBRACE); }
        ","  { TOK(TK_COMMA); }
        "="  { TOK(TK_ASSIGN); }
        "+=" { TOK(TK_PLUSEQ); }
        "-=" { TOK(TK_MINUSEQ); }
        "*=" { TOK(TK_STAREQ); }
        "/=" { TOK(TK_SLASHEQ); }
        "==" { TOK(TK_EQ); }
        "!=" { TOK(TK_NE); }
        "<"  { TOK(TK_LT); }
        "<=" { TOK(TK_LE); }
        ">"  { TOK(TK_GT); }
        ">=" { TOK(TK_GE); }
        "+"  { TOK(TK_PLUS); }
        "-"  { TOK(TK_MINUS); }
        "*"  { TOK(TK_STAR); }
        "/"  { TOK(TK_SLASH); }
        "@"  { TOK(TK_AT); }
        "^"  { TOK(TK_CARET); }

        *    { lx->cur = start + lex_bad_char(lx, start); continue; }
    */
done:
#undef TOK
        t.len = (uint32_t)(lx->cur - start);
        lex_check_token(lx, t);
        return t;
    }
}

/* Names of token kinds as messages show them. */
const char *lex_token_name(int kind)
{
    switch (kind) {
    case TK_EOF: return "end of file";
    case TK_NEWLINE: return "a new line or ';'";
    case TK_IMPORT: return "'import'";
    case TK_FN: return "'fn'";
    case TK_LOSS: return "'loss'";
    case TK_METRIC: return "'metric'";
    case TK_LAYER: return "'layer'";
    case TK_OPTIMIZER: return "'optimizer'";
    case TK_MODEL: return "'model'";
    case TK_DATA: return "'data'";
    case TK_TRAIN: return "'train'";
    case TK_PARAM: return "'param'";
    case TK_STATE: return "'state'";
    case TK_RETURN: return "'return'";
    case TK_TRUE: return "'true'";
    case TK_FALSE: return "'false'";
    case TK_IDENT: return "a name";
    case TK_INT: return "an integer";
    case TK_FLOAT: return "a number";
    case TK_STRING: return "a string";
    case TK_LPAREN: return "'('";
    case TK_RPAREN: return "')'";
    case TK_LBRACKET: return "'['";
    case TK_RBRACKET: return "']'";
    case TK_LBRACE: return "'{'";
    case TK_RBRACE: return "'}'";
    case TK_COMMA: return "','";
    case TK_ASSIGN: return "'='";
    case TK_PLUSEQ: return "'+='";
    case TK_MINUSEQ: return "'-='";
    case TK_STAREQ: return "'*='";
    case TK_SLASHEQ: return "'/='";
    case TK_EQ: return "'=='";
    case TK_NE: return "'!='";
    case TK_LT: return "'<'";
    case TK_LE: return "'<='";
    case TK_GT: return "'>'";
    case TK_GE: return "'>='";
    case TK_PLUS: return "'+'";
    case TK_MINUS: return "'-'";
    case TK_STAR: return "'*'";
    case TK_SLASH: return "'/'";
    case TK_AT: return "'@'";
    case TK_CARET: return "'^'";
    default: return "a token";
    }
}

/* The short, stable name of a token kind used by `nnlc dump --stage=tokens`. */
const char *lex_kind_tag(int kind)
{
    static const char *const tags[] = {
        [TK_EOF] = "EOF", [TK_NEWLINE] = "NEWLINE", [TK_IMPORT] = "IMPORT", [TK_FN] = "FN",
        [TK_LOSS] = "LOSS", [TK_METRIC] = "METRIC", [TK_LAYER] = "LAYER",
        [TK_OPTIMIZER] = "OPTIMIZER", [TK_MODEL] = "MODEL", [TK_DATA] = "DATA",
        [TK_TRAIN] = "TRAIN", [TK_PARAM] = "PARAM", [TK_STATE] = "STATE",
        [TK_RETURN] = "RETURN", [TK_TRUE] = "TRUE", [TK_FALSE] = "FALSE",
        [TK_IDENT] = "IDENT", [TK_INT] = "INT", [TK_FLOAT] = "FLOAT", [TK_STRING] = "STRING",
        [TK_LPAREN] = "LPAREN", [TK_RPAREN] = "RPAREN", [TK_LBRACKET] = "LBRACKET",
        [TK_RBRACKET] = "RBRACKET", [TK_LBRACE] = "LBRACE", [TK_RBRACE] = "RBRACE",
        [TK_COMMA] = "COMMA", [TK_ASSIGN] = "ASSIGN", [TK_PLUSEQ] = "PLUSEQ",
        [TK_MINUSEQ] = "MINUSEQ", [TK_STAREQ] = "STAREQ", [TK_SLASHEQ] = "SLASHEQ",
        [TK_EQ] = "EQ", [TK_NE] = "NE", [TK_LT] = "LT", [TK_LE] = "LE", [TK_GT] = "GT",
        [TK_GE] = "GE", [TK_PLUS] = "PLUS", [TK_MINUS] = "MINUS", [TK_STAR] = "STAR",
        [TK_SLASH] = "SLASH", [TK_AT] = "AT", [TK_CARET] = "CARET",
    };
    if (kind < 0 || (size_t)kind >= NNL_COUNTOF(tags) || !tags[kind])
        return "?";
    return tags[kind];
}
