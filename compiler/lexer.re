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

        !include "punct.re"; /* the operators and delimiters of tokens.def */

        *    { lx->cur = start + lex_bad_char(lx, start); continue; }
    */
done:
#undef TOK
        t.len = (uint32_t)(lx->cur - start);
        lex_check_token(lx, t);
        return t;
    }
}

/* ---- the token table (tokens.def) ---- */

/* tokens.def and parser.y's %token line list the same kinds in the same order. */
#define TOKEN(kind, name)                                                                  \
    _Static_assert(LEX_ORDER_##kind == TK_##kind,                                          \
                   "tokens.def and parser.y's %token line differ at " #kind);
#include "tokens.def"

/* Names of token kinds as messages show them. */
const char *lex_token_name(int kind)
{
    static const char *const names[] = {
#define TOKEN(kind, name) [TK_##kind] = name,
#include "tokens.def"
    };
    if (kind < 0 || (size_t)kind >= NNL_COUNTOF(names))
        return "a token";
    return names[kind];
}

/* The short, stable name of a token kind used by `nnlc dump --stage=tokens`. */
const char *lex_kind_tag(int kind)
{
    static const char *const tags[] = {
#define TOKEN(kind, name) [TK_##kind] = #kind,
#include "tokens.def"
    };
    if (kind < 0 || (size_t)kind >= NNL_COUNTOF(tags))
        return "?";
    return tags[kind];
}

const char *lex_token_text(int kind)
{
    static const char *const texts[LEX_TOKEN_COUNT] = {
#define TOKEN(kind, name)
#define KEYWORD(kind, word, class) [TK_##kind] = word,
#define PUNCT(kind, text) [TK_##kind] = text,
#include "tokens.def"
    };
    if (kind < 0 || kind >= LEX_TOKEN_COUNT)
        return NULL;
    return texts[kind];
}

int lex_keyword(const char *s, uint32_t len, bool *reserved)
{
    enum { RESERVED = 1, CONTEXTUAL = 0 };
    static const struct {
        const char *word;
        int kind;
        bool reserved;
    } words[] = {
#define TOKEN(kind, name)
#define KEYWORD(kind, word, class) {word, TK_##kind, class},
#include "tokens.def"
    };
    for (size_t i = 0; i < NNL_COUNTOF(words); i++)
        if (strlen(words[i].word) == len && memcmp(words[i].word, s, len) == 0) {
            *reserved = words[i].reserved;
            return words[i].kind;
        }
    *reserved = false;
    return TK_IDENT;
}
