"""check_editors.py ROOT — the editor support in editors/ against the compiler's sources.

  json      every JSON file of editors/vscode parses; package.json declares the language
            and the grammar, with paths that exist
  regex     every regex of the TextMate grammar compiles with Python's re (the grammar
            uses no Oniguruma-only syntax)
  keywords  every keyword of compiler/tokens.def (reserved and contextual) gets a
            keyword's scope/group from both the grammar and the Vim file at a
            statement's start; every builtin of compiler/builtins.def and compiler/ops.def
            (FN SCRIPT) and every name stdlib/*.nnl declares gets a function's or a
            value's scope/group
  sample    tests/editors/sample.nnl: given words get the scope and the group they must
  vim       Vim loads ftdetect and syntax with no error, and sets filetype nnl

The grammar is run by a small TextMate tokenizer written here (first match wins, earliest
start first, then the order of the patterns; begin/end regions). Vim is run as
`vim -Es -u NONE` with tests/editors/dump.vim. Run with Debian's /usr/bin/python3.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


# ---- the compiler's words ----

def compiler_keywords():
    """The words of compiler/tokens.def: 'KEYWORD(FN, "fn", CONTEXTUAL)'."""
    return set(re.findall(r'^KEYWORD\([A-Z]+, "([a-z]+)", [A-Z]+\)$', read("compiler/tokens.def"),
                          re.M))


def sema_builtins():
    """The built-in functions and values of compiler/builtins.def ('BUILTIN(MIN, "min", ...',
    'VALUE(PI, "pi")'), and the ops compiler/ops.def lets scripts call as functions
    (FN SCRIPT: 'OP(EXP, "exp", 1, ELEM, ELEM, 0, SCRIPT, ...)')."""
    src = read("compiler/builtins.def")
    fns = set(re.findall(r'^BUILTIN\([A-Z_0-9]+, "([a-z_0-9]+)"', src, re.M))
    fns |= set(re.findall(r'^OP\([A-Z_0-9]+, *"([a-z_0-9]+)", *\d+, *\w+, *\w+, *\w+, *SCRIPT,',
                          read("compiler/ops.def"), re.M))
    values = set(re.findall(r'^VALUE\([A-Z_0-9]+, "([a-z_0-9]+)"\)', src, re.M))
    return fns, values


def stdlib_names():
    names = set()
    for f in sorted(os.listdir(os.path.join(ROOT, "stdlib"))):
        if f.endswith(".nnl"):
            names |= set(re.findall(r"^(?:fn|layer|loss|metric|optimizer) ([a-z_0-9]+)",
                                    read("stdlib/" + f), re.M))
    return names


# ---- a TextMate tokenizer, enough for this grammar ----

def flatten(rule, repo):
    """The rules a pattern list stands for, includes resolved."""
    out = []
    for p in rule:
        if "include" in p:
            out += flatten([repo[p["include"][1:]]], repo)
        elif "patterns" in p and "match" not in p and "begin" not in p:
            out += flatten(p["patterns"], repo)
        else:
            out.append(p)
    return out


def scopes_of(rule, m):
    """(start, end, scope) of a match of a rule: its captures, else the whole match."""
    caps = rule.get("captures", {})
    spans = [(m.start(int(k)), m.end(int(k)), v["name"]) for k, v in caps.items()
             if m.group(int(k)) is not None]
    if "name" in rule:
        spans.append((m.start(), m.end(), rule["name"]))
    return spans


def tokenize_line(line, rules):
    """Word -> scope for each word start of the line (the innermost scope there)."""
    spans, pos = [], 0
    while pos < len(line):
        best = None
        for r in rules:
            m = re.compile(r.get("match") or r["begin"]).search(line, pos)
            if m and (best is None or m.start() < best[1].start()):
                best = (r, m)
        if best is None:
            break
        r, m = best
        if "begin" in r:
            e = re.compile(r["end"]).search(line, m.end())
            end = e.end() if e else len(line)
            spans.append((m.start(), end, r["name"]))
        else:
            spans += scopes_of(r, m)
            end = m.end()
        pos = end if end > m.start() else m.start() + 1
    words = {}
    for w in re.finditer(r"[A-Za-z_]\w*|\.?\d[\w.+-]*|\"[^\"]*\"?|#.*|[-+*/^@<>=!]=?", line):
        inner = [s for s in spans if s[0] <= w.start() < s[1]]
        inner.sort(key=lambda s: s[1] - s[0])
        words.setdefault(w.group(), inner[0][2] if inner else "-")
    return words


def tm_scope(rules, line, word):
    return tokenize_line(line, rules).get(word, "-")


# ---- Vim ----

def vim_groups(text):
    """(line, word) -> group for the text, as Vim's syntax file sees it; also the filetype
    and v:errmsg."""
    with tempfile.TemporaryDirectory() as d:
        src, dump = os.path.join(d, "t.nnl"), os.path.join(d, "dump")
        with open(src, "w") as f:
            f.write(text)
        vimdir = os.path.join(ROOT, "editors", "vim")
        r = subprocess.run(["vim", "-Es", "-u", "NONE", "-i", "NONE", "-N",
                            "--cmd", "set rtp^=" + vimdir, "-c", "filetype on",
                            "-c", "syntax on", "-c", "edit " + src,
                            "-S", os.path.join(HERE, "dump.vim")],
                           env=dict(os.environ, NNL_DUMP=dump), capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0 or not os.path.exists(dump):
            fail(f"vim exited {r.returncode}: {r.stdout} {r.stderr}")
            return {}, "", ""
        groups, ft, err = {}, "", ""
        for row in open(dump).read().splitlines():
            if row.startswith("filetype "):
                ft = row[9:]
            elif row.startswith("errmsg "):
                err = row[7:]
            else:
                pos, group = row.split("\t")
                line, _, word = pos.split(" ", 2)
                groups.setdefault((int(line), word), group)
        return groups, ft, err


# ---- the checks ----

def check_json():
    vs = os.path.join(ROOT, "editors", "vscode")
    docs = {}
    for path in ["package.json", "language-configuration.json", "syntaxes/nnl.tmLanguage.json"]:
        try:
            with open(os.path.join(vs, path)) as f:
                docs[path] = json.load(f)
        except (OSError, ValueError) as e:
            fail(f"editors/vscode/{path}: {e}")
    pkg = docs.get("package.json", {}).get("contributes", {})
    lang = pkg.get("languages", [{}])[0]
    gram = pkg.get("grammars", [{}])[0]
    if lang.get("id") != "nnl" or ".nnl" not in lang.get("extensions", []):
        fail(f"package.json: language {lang}")
    if gram.get("scopeName") != "source.nnl" or gram.get("language") != "nnl":
        fail(f"package.json: grammar {gram}")
    for p in [lang.get("configuration", ""), gram.get("path", "")]:
        if not os.path.isfile(os.path.join(vs, p)):
            fail(f"package.json names {p}, which is not there")
    if docs.get("language-configuration.json", {}).get("comments", {}).get("lineComment") != "#":
        fail("language-configuration.json: the line comment is not '#'")
    return docs.get("syntaxes/nnl.tmLanguage.json")


def check_regexes(grammar):
    count = 0

    def walk(node):
        nonlocal count
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("match", "begin", "end", "while") and isinstance(v, str):
                    count += 1
                    try:
                        re.compile(v)
                    except re.error as e:
                        fail(f"grammar regex {v!r}: {e}")
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(grammar)
    print(f"regex: {count} regexes compile")
    if count < 10:
        fail(f"only {count} regexes found in the grammar")


def check_keywords(rules):
    lex = compiler_keywords()
    if len(lex) < 10:
        fail(f"too few keywords found in compiler/tokens.def: {sorted(lex)}")
    fns, values = sema_builtins()
    lib = stdlib_names()
    if len(fns) < 20 or len(values) < 5 or len(lib) < 30:
        fail(f"too few builtins found: {len(fns)} {len(values)} {len(lib)}")
    # one line per word, where it must be highlighted
    cases = []  # (line text, word, textmate scope prefix, vim group)
    for k in sorted(lex):
        if k == "import":
            cases.append(('import "x.nnl"', k, "keyword.", "nnlImport"))
        elif k == "return":
            cases.append(("return x", k, "keyword.", "nnlReserved"))
        elif k in ("true", "false"):
            cases.append((f"x = {k}", k, "constant.language", "nnlBoolean"))
        else:
            cases.append((f"{k} name", k, "keyword.", "nnlDeclaration"))
    for f in sorted(fns):
        cases.append((f"y = {f}(x)", f, "support.function", "nnlBuiltin"))
    for v in sorted(values):
        cases.append((f"y = 2 * {v}", v, "variable.language", "nnlValue"))
    for n in sorted(lib):
        cases.append((f"y = {n}(x)", n, "support.function", "nnlStdlib"))
    check_cases(rules, cases, "keywords")


def check_cases(rules, cases, what):
    text = "".join(c[0] + "\n" for c in cases)
    groups, ft, err = vim_groups(text)
    bad = 0
    for i, (line, word, scope, group) in enumerate(cases):
        got = tm_scope(rules, line, word)
        if not got.startswith(scope):
            bad += 1
            fail(f"grammar: '{word}' in '{line}' is {got}, expected {scope}...")
        if groups.get((i + 1, word)) != group:
            bad += 1
            fail(f"vim: '{word}' in '{line}' is {groups.get((i + 1, word))}, expected {group}")
    if ft != "nnl" or err:
        fail(f"vim: filetype '{ft}', error '{err}'")
    print(f"{what}: {len(cases)} words, {bad} wrong")


def check_sample(rules):
    lines = open(os.path.join(HERE, "sample.nnl")).read().splitlines()
    want = [  # (line number, word, textmate scope prefix, vim group)
        (1, "# sample.nnl — what the editor files must highlight (tests/editors/check_editors.py)",
         "comment.line", "nnlComment"),
        (2, "import", "keyword.control.import", "nnlImport"),
        (2, '"stdlib/extra.nnl"', "string.quoted", "nnlString"),
        (3, "data", "keyword.other.declaration", "nnlDeclaration"),
        (3, "xor", "entity.name.function", "nnlDeclName"),
        (3, "csv", "support.function.builtin", "nnlBuiltin"),
        (5, "act", "entity.name.function", "nnlDeclName"),
        (5, "tanh", "support.function.builtin", "nnlBuiltin"),
        (5, "0.5", "constant.numeric", "nnlNumber"),
        (5, ".5e-1", "constant.numeric", "nnlNumber"),
        (5, "*", "keyword.operator", "nnlOperator"),
        (7, "param", "keyword.other.declaration", "nnlDeclaration"),
        (8, "return", "keyword.control.return", "nnlReserved"),
        (10, "1e-3", "constant.numeric", "nnlNumber"),
        (11, "state", "keyword.other.declaration", "nnlDeclaration"),
        (12, "grad", "variable.language", "nnlValue"),
        (13, "param", "variable.language", "nnlValue"),
        (13, "-=", "keyword.operator.assignment", "nnlOperator"),
        (16, "relu", "support.function.stdlib", "nnlStdlib"),
        (16, "dense", "support.function.stdlib", "nnlStdlib"),
        (16, "he_uniform", "support.function.stdlib", "nnlStdlib"),
        (19, "train", "keyword.other.declaration", "nnlDeclaration"),
        (20, "data", "variable.other.property", "nnlTrainKey"),
        (20, "xor", "-", "-"),
        (21, "bce", "support.function.stdlib", "nnlStdlib"),
        (22, "optimizer", "variable.other.property", "nnlTrainKey"),
        (22, "epochs", "variable.language", "nnlValue"),
        (23, "epochs", "variable.other.property", "nnlTrainKey"),
        (25, "true", "constant.language", "nnlBoolean"),
        (25, "seed", "variable.other.property", "nnlTrainKey"),
    ]
    groups, ft, err = vim_groups("\n".join(lines) + "\n")
    bad = 0
    for n, word, scope, group in want:
        got = tm_scope(rules, lines[n - 1], word)
        if not got.startswith(scope):
            bad += 1
            fail(f"grammar: sample.nnl:{n}: '{word}' is {got}, expected {scope}")
        if groups.get((n, word)) != group:
            bad += 1
            fail(f"vim: sample.nnl:{n}: '{word}' is {groups.get((n, word))}, expected {group}")
    if ft != "nnl" or err:
        fail(f"vim: filetype '{ft}', error '{err}'")
    print(f"sample: {len(want)} words, {bad} wrong")


def main():
    grammar = check_json()
    if grammar is None:
        sys.exit(1)
    check_regexes(grammar)
    rules = flatten(grammar["patterns"], grammar["repository"])
    check_keywords(rules)
    check_sample(rules)
    sys.exit(1 if failures else 0)


main()
