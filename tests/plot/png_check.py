#!/usr/bin/python3
"""png_check.py PNG MIN_INK MIN_COLOURS [RRGGBB...] — exits 0 when the PNG (8-bit RGB or
RGBA, not interlaced, as Chromium writes screenshots) has at least MIN_INK non-white
pixels, MIN_COLOURS distinct colours, and at least 20 pixels of each RRGGBB given (the
curves' colours); prints what it counted. Only the standard library
(zlib, struct): no imaging module."""
import struct
import sys
import zlib


def chunks(data):
    pos = 8
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, data[pos + 8:pos + 8 + n]
        pos += 12 + n


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def unfilter(raw, width, height, bpp):
    stride = width * bpp
    rows, prev, pos = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[pos], bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                line[i] = (line[i] + paeth(a, b, c)) & 255
            elif kind != 0:
                sys.exit("png_check: unknown filter %d" % kind)
        rows.append(line)
        prev = line
    return rows


def main():
    path, min_ink, min_colours = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit("png_check: %s is not a PNG" % path)
    idat = b""
    for kind, body in chunks(data):
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    if depth != 8 or ctype not in (2, 6) or interlace:
        sys.exit("png_check: unsupported PNG (depth %d, colour type %d)" % (depth, ctype))
    bpp = 3 if ctype == 2 else 4
    ink, colours = 0, {}
    for line in unfilter(zlib.decompress(idat), width, height, bpp):
        for i in range(0, len(line), bpp):
            rgb = bytes(line[i:i + 3])
            colours[rgb] = colours.get(rgb, 0) + 1
            ink += rgb != b"\xff\xff\xff"
    print("png_check: %dx%d, %d non-white pixels, %d colours" % (width, height, ink, len(colours)))
    if ink < min_ink or len(colours) < min_colours:
        sys.exit("png_check: %s looks blank (want %d non-white pixels and %d colours)"
                 % (path, min_ink, min_colours))
    for want in sys.argv[4:]:
        got = colours.get(bytes.fromhex(want), 0)
        if got < 20:
            sys.exit("png_check: %s has %d pixels of #%s (want 20)" % (path, got, want))


main()
