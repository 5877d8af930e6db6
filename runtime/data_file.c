/* data_file.c — reading binary data files (IDX, NPY), plain or gzip-compressed.
 *
 * Every file goes through zlib, which passes plain files through unchanged; whether a
 * file is compressed is decided here from its first two bytes (the gzip magic 1f 8b), as
 * zlib decides. Offsets count bytes of the uncompressed data. The one trap: gzread
 * returns a short count both at the end of the data and when a .gz stream is cut off;
 * only gzerror (Z_BUF_ERROR) tells the two apart, so it is asked after every read. The
 * gzip trailer (CRC and length) is only checked once the stream has been read to its end,
 * which nnlrt_file_end does.
 */
#define _POSIX_C_SOURCE 200809L /* pread */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nnlrt_int.h"

enum {
    FILE_GZ_BUFFER = 1 << 17,   /* zlib's input and output buffers */
    FILE_CHUNK = 1 << 30,       /* the most one gzread is asked for (it returns an int) */
    FILE_FIRST_ALLOC = 1 << 24, /* the most allocated for .gz data before it arrives */
    FILE_SCRATCH = 1 << 16,     /* reading past the end */
};

void nnlrt_file_error(const NnlrtFile *f, int64_t at, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nnlrt_error(f->path, 0, 0, "at byte %lld%s: %s", (long long)at,
                f->compressed ? " (uncompressed)" : "", msg);
}

/* The gzip magic at the start of the file (pread leaves the file offset alone). */
static bool file_is_gzip(int fd)
{
    unsigned char magic[2];
    return pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

bool nnlrt_file_open(NnlrtFile *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    if (!path) {
        nnlrt_error(NULL, 0, 0, "no file name given for a data file");
        return false;
    }
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        nnlrt_error(path, 0, 0, "cannot open the file: %s", strerror(errno));
        return false;
    }
    struct stat st;
    int err = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (err) {
        nnlrt_error(path, 0, 0, "cannot read the file: %s", strerror(err));
        close(fd);
        return false;
    }
    f->file_size = S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
    f->compressed = file_is_gzip(fd);
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd); /* gzdopen leaves it open when it fails */
        nnlrt_error(path, 0, 0, "cannot read the file: out of memory");
        return false;
    }
    if (f->file_size < 0 || f->file_size > FILE_GZ_BUFFER)
        gzbuffer(f->gz, FILE_GZ_BUFFER); /* small files keep zlib's 8 KB */
    return true;
}

/* What gzclose_r says is not needed: every read was checked, and the end of a .gz was
 * verified by reading to it (closing one left midway, after an error, says Z_BUF_ERROR). */
void nnlrt_file_close(NnlrtFile *f)
{
    if (f->gz)
        (void)gzclose_r(f->gz);
    f->gz = NULL;
}

/* After a gzread: false after reporting a read error or corrupt .gz data; a cut-off
 * stream (Z_BUF_ERROR) only sets f->cut, for the caller's "truncated" message. */
static bool file_check_gz(NnlrtFile *f)
{
    int err = Z_OK;
    const char *msg = gzerror(f->gz, &err);
    if (err == Z_OK || err == Z_STREAM_END)
        return true;
    if (err == Z_BUF_ERROR) {
        f->cut = true;
        return true;
    }
    if (err == Z_ERRNO)
        nnlrt_file_error(f, f->at, "cannot read the file: %s", strerror(errno));
    else if (err == Z_MEM_ERROR)
        nnlrt_file_error(f, f->at, "cannot read the file: out of memory");
    else /* zlib says "<fd:N>: what" */
        nnlrt_file_error(f, f->at, "corrupt gzip data (%s)",
                         msg && strstr(msg, ": ") ? strstr(msg, ": ") + 2 : msg ? msg : "?");
    return false;
}

int64_t nnlrt_file_read(NnlrtFile *f, void *buf, int64_t n)
{
    int64_t got = 0;
    while (got < n) {
        unsigned ask = (unsigned)(n - got < FILE_CHUNK ? n - got : FILE_CHUNK);
        int r = gzread(f->gz, (char *)buf + got, ask);
        if (r > 0) {
            got += r;
            f->at += r;
        }
        if (!file_check_gz(f))
            return -1;
        if (r < 0 && !f->cut) {
            nnlrt_file_error(f, f->at, "cannot read the file");
            return -1;
        }
        if (r <= 0 || f->cut)
            break;
    }
    return got;
}

/* " (the compressed stream is cut short)" when it is. */
static const char *file_cut_note(const NnlrtFile *f)
{
    return f->cut ? " (the compressed stream is cut short)" : "";
}

bool nnlrt_file_header(NnlrtFile *f, void *buf, int64_t n, const char *what)
{
    int64_t got = nnlrt_file_read(f, buf, n);
    if (got < 0)
        return false;
    if (got == n)
        return true;
    nnlrt_file_error(f, f->at, "file truncated in the header (%s)%s", what, file_cut_note(f));
    return false;
}

static void file_truncated(const NnlrtFile *f, int64_t at, int64_t bytes, int64_t have)
{
    nnlrt_file_error(f, at, "file truncated: the header promises %lld bytes of data, only %lld "
                     "are there%s", (long long)bytes, (long long)have, file_cut_note(f));
}

static void file_extra(const NnlrtFile *f, int64_t at, int64_t extra, const char *last)
{
    nnlrt_file_error(f, at, "%lld byte%s of unexpected data after the last %s",
                     (long long)extra, extra == 1 ? "" : "s", last);
}

bool nnlrt_file_check_size(const NnlrtFile *f, int64_t bytes, const char *last)
{
    if (f->compressed || f->file_size < 0)
        return true; /* only known once read */
    int64_t left = f->file_size - f->at;
    if (left < bytes)
        file_truncated(f, f->file_size, bytes, left);
    else if (left > bytes)
        file_extra(f, f->at + bytes, left - bytes, last);
    return left == bytes;
}

/* Reads what is left after the data, which must be nothing; for a .gz this also checks
 * the trailer. */
static bool file_end(NnlrtFile *f, const char *last)
{
    char scratch[FILE_SCRATCH];
    int64_t end = f->at, extra = 0, got;
    while ((got = nnlrt_file_read(f, scratch, sizeof scratch)) > 0)
        extra += got;
    if (got < 0)
        return false;
    if (extra > 0) {
        file_extra(f, end, extra, last);
        return false;
    }
    if (f->cut) {
        nnlrt_file_error(f, f->at, "the compressed stream is cut short after the data");
        return false;
    }
    return true;
}

/* A .gz says how much it holds only by being read: the buffer grows as data arrives (a
 * header promising terabytes costs what the stream really has), and is exactly `bytes`
 * once it is all there. */
static int64_t file_read_growing(NnlrtFile *f, char **buf, int64_t bytes)
{
    int64_t cap = f->compressed && bytes > FILE_FIRST_ALLOC ? FILE_FIRST_ALLOC : bytes;
    int64_t have = 0;
    *buf = nnlrt_alloc((size_t)cap);
    for (;;) {
        int64_t got = nnlrt_file_read(f, *buf + have, cap - have);
        if (got < 0)
            return -1;
        have += got;
        if (have < cap || cap == bytes)
            return have;
        cap = cap > bytes / 2 ? bytes : 2 * cap;
        *buf = nnlrt_realloc(*buf, (size_t)cap);
    }
}

bool nnlrt_file_data(NnlrtFile *f, int64_t bytes, const char *last, void **out)
{
    *out = NULL;
    char *buf;
    int64_t start = f->at;
    int64_t have = file_read_growing(f, &buf, bytes);
    if (have == bytes && file_end(f, last)) {
        *out = buf;
        return true;
    }
    if (have >= 0 && have < bytes)
        file_truncated(f, start + have, bytes, have);
    nnlrt_free(buf);
    return false;
}
