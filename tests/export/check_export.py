"""check_export.py — reads what `nnlc export` wrote, with numpy, for tests/export/export.sh.

  check_export.py values PARAMS ST NPYDIR DTYPE
      PARAMS (a --save-params file), the safetensors file ST and the NPY files in NPYDIR
      hold the same tensors, in the same order (ST), with the same values, bit for bit in
      DTYPE (float32 or float64); ST's header is checked field by field.
  check_export.py patch CKPT OUT (version N | rename OLD NEW)
      a copy of checkpoint CKPT with its version field set to N, or its tensor OLD renamed
      NEW (same length) in the table, with the CRC made to agree: files only the checks
      after the CRC can refuse.
  check_export.py names ST
      prints the safetensors file's tensor names, one per line (json.loads: escapes undone).

Run with Debian's /usr/bin/python3 (python3-numpy). Exits 1 with a message on a mismatch.
"""
import json
import os
import struct
import sys
import zlib

import numpy as np


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def read_params(path, dtype):
    """The --save-params CSV: name, then the values; %.9g / %.17g read back exactly."""
    tensors = []
    with open(path) as f:
        for line in f:
            fields = line.rstrip("\n").split(",")
            tensors.append((fields[0], np.array([float(v) for v in fields[1:]], dtype=dtype)))
    return tensors


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    if n % 8 or 8 + n > len(data):
        fail(f"{path}: header length {n} (file of {len(data)} bytes)")
    text = data[8:8 + n].decode("utf-8")
    pad = len(text) - len(text.rstrip(" "))
    if pad >= 8 or not text.rstrip(" ").endswith("}"):
        fail(f"{path}: header padding of {pad} spaces after {text.rstrip(' ')[-10:]!r}")
    header = json.loads(text, object_pairs_hook=lambda pairs: pairs)
    return header, data[8 + n:]


def check_safetensors(path, want, dtype):
    header, body = read_safetensors(path)
    keys = [k for k, _ in header]
    if keys[-1] != "__metadata__" or keys[:-1] != [name for name, _ in want]:
        fail(f"{path}: keys {keys}, expected {[n for n, _ in want]} and __metadata__")
    meta = dict(header[-1][1])
    if meta.get("producer") != "nnlc export" or not meta.get("step", "").isdigit():
        fail(f"{path}: metadata {meta}")
    st_dtype = {"float32": "F32", "float64": "F64"}[dtype]
    at = 0
    for (name, fields), (_, values) in zip(header[:-1], want):
        fields = dict(fields)
        begin, end = fields["data_offsets"]
        shape = fields["shape"]
        if fields["dtype"] != st_dtype or begin != at or end - begin != values.nbytes:
            fail(f"{path}: {name}: {fields}, expected {st_dtype} at {at}, {values.nbytes} bytes")
        if int(np.prod(shape)) != values.size or any(d < 1 for d in shape):
            fail(f"{path}: {name}: shape {shape} for {values.size} values")
        got = np.frombuffer(body[begin:end], dtype="<" + values.dtype.str[1:])
        if got.tobytes() != values.tobytes():
            fail(f"{path}: {name}: values differ: {got} / {values}")
        at = end
    if at != len(body):
        fail(f"{path}: {len(body) - at} bytes after the last tensor")
    return {name: dict(fields)["shape"] for name, fields in header[:-1]}


def check_npy(directory, want, shapes):
    files = sorted(os.listdir(directory))
    if files != sorted(name + ".npy" for name, _ in want):
        fail(f"{directory}: files {files}")
    for name, values in want:
        a = np.load(os.path.join(directory, name + ".npy"))
        if a.dtype != values.dtype or list(a.shape) != shapes[name]:
            fail(f"{name}.npy: {a.dtype} {a.shape}, expected {values.dtype} {shapes[name]}")
        if a.ravel().tobytes() != values.tobytes():
            fail(f"{name}.npy: values differ")


def values(params, st, npydir, dtype):
    want = read_params(params, dtype)
    shapes = check_safetensors(st, want, dtype)
    check_npy(npydir, want, shapes)
    print(f"{len(want)} tensors, {sum(v.size for _, v in want)} values: identical")


def patch(ckpt, out, what, args):
    data = bytearray(open(ckpt, "rb").read())
    if what == "version":
        data[8:12] = struct.pack("<I", int(args[0]))
    else:
        old, new = (s.encode() for s in args)
        (sums,) = struct.unpack("<I", data[36:40])
        (table_bytes,) = struct.unpack("<Q", data[152:160])
        start = 160 + 8 * sums
        table = bytes(data[start:start + table_bytes])
        entry = struct.pack("<I", len(old)) + old
        if len(old) != len(new) or table.count(entry) != 1:
            fail(f"cannot rename {old} to {new}")
        at = start + table.index(entry) + 4
        data[at:at + len(new)] = new
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    open(out, "wb").write(data)


def main():
    cmd = sys.argv[1]
    if cmd == "values":
        values(*sys.argv[2:6])
    elif cmd == "patch":
        patch(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif cmd == "names":
        header, _ = read_safetensors(sys.argv[2])
        for name, _ in header:
            print(name)
    else:
        fail(f"unknown command {cmd}")


main()
